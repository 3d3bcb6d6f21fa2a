"""FACTORY_EXECUTOR picks the engine by configuration; a wrong value names the choices."""

from __future__ import annotations

import pytest

from factory_assets.execution import executor_from_env


def test_in_process_by_default_and_the_named_executors_otherwise():
    assert executor_from_env({}).name == "in_process"
    assert executor_from_env({"FACTORY_EXECUTOR": "multiprocess"}).name == "multiprocess"
    dask = executor_from_env({"FACTORY_EXECUTOR": "dask", "FACTORY_DASK_SCHEDULER": "tcp://10.0.0.5:8786"})
    assert dask.name == "dask"


@pytest.mark.parametrize("env, fragments", [
    ({"FACTORY_EXECUTOR": "spark"}, ["'spark'", "in_process, multiprocess, dask", "Going to production"]),
    ({"FACTORY_EXECUTOR": "dask", "FACTORY_DASK_WORKERS": "two"}, ["FACTORY_DASK_WORKERS='two'", "at least 1"]),
    ({"FACTORY_EXECUTOR": "dask", "FACTORY_DASK_WORKERS": "0"}, ["FACTORY_DASK_WORKERS='0'"]),
])
def test_a_wrong_setting_says_what_to_choose(env, fragments):
    with pytest.raises(ValueError) as error:
        executor_from_env(env)
    for fragment in fragments:
        assert fragment in str(error.value)
