"""End to end under a real scheduler, triggerer and API server (``airflow standalone``).

smr_word_count is triggered through the REST API with a conf that overrides its Params, and its
XCom result is read back through the REST API.
"""

from __future__ import annotations

import json

DAG_ID = "smr_word_count"
OUTPUT = "s3://smr-examples/word_count/rest-api/"


def test_word_count_triggered_through_the_rest_api_with_params_from_conf(standalone):
    api = standalone
    api.ready(DAG_ID)

    _, run_path = api.trigger(DAG_ID, {"output": OUTPUT, "num_reducers": 3})
    api.finish(run_path, 300)

    status, entry = api.call("GET", f"{run_path}/taskInstances/count_words/xcomEntries/return_value")
    assert status == 200, entry
    result = entry["value"]
    result = json.loads(result) if isinstance(result, str) else result
    assert result["status"] == "SUCCEEDED"
    assert result["output"].rstrip("/") == OUTPUT.rstrip("/")  # the conf overrode the Param
    assert len(result["parts"]) == 3
