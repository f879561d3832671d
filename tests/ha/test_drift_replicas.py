"""Drift scores on two control-plane replicas (one real PostgreSQL): the leader evaluates, every replica exports
the stored result, so the series Prometheus scrapes (and an alert on them) do not break when the leader dies."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.backend.test_drift import drifting_model
from tests.backend.test_drift_webhook import scrape
from tests.ha.cluster import cluster
from tests.support.postgres import PostgresServer, create_database
from tests.support.processes import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_every_replica_exports_the_leaders_drift_scores_and_the_survivor_goes_on(
        postgres: PostgresServer, tmp_path: Path) -> None:
    url = create_database(postgres, f"jf_{uuid.uuid4().hex[:8]}")
    with cluster(tmp_path / "cluster", url, extra_args=("--drift-interval", "0.3s")) as ha:
        [leader] = ha.leaders()
        standby = next(r for r in ha.replicas if r is not leader)
        drifting = drifting_model(standby, tmp_path, feature=4, shift=-0.8, windows=3, rows=400, seed=5)
        model = drifting.name

        detected = f'jetfleet_drift_detected{{model="{model}",version="1"}}'
        ks = f'jetfleet_drift_score{{index="4",input="input",model="{model}",statistic="ks",version="1"}}'
        wait_until(lambda: all(scrape(r).get(detected) == 1.0 for r in ha.replicas), 30,
                   what="both replicas export the drift")
        assert ha.status(standby)["leader"] is False  # exported by a replica that evaluated nothing
        assert scrape(standby)[ks] == scrape(leader)[ks] > scrape(standby)[ks.replace("score", "threshold")]

        leader.kill()
        assert scrape(standby)[detected] == 1.0  # at once, before it leads or evaluates anything
        wait_until(lambda: ha.status(standby)["leader"], 15, interval=0.1, what="the survivor leads")
        drifting.post_clean(range(3, 9))  # six clean windows: the survivor's own evaluation sees the recovery
        wait_until(lambda: scrape(standby).get(detected) == 0.0, 30, what="the survivor exports the recovery")
