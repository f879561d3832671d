from jetfleet.cli import main

main()
