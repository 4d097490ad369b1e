"""Settings from the environment and a config file; bad values name the variable."""

from __future__ import annotations

import pytest

from churnkit.errors import SettingsError
from serving.settings import Settings, default_workers, workers_setting

BASE = {"CHURNKIT_MODEL": "models:/churn@champion", "CHURNKIT_DATA": "/data"}


def test_environment_gives_the_settings_and_defaults():
    s = Settings.from_env({**BASE, "CHURNKIT_MAX_IDS": "20", "CHURNKIT_API_KEY": "k"})
    assert (s.model, s.data, s.max_ids, s.api_key, s.port) == (
        "models:/churn@champion", "/data", 20, "k", 3000)
    assert Settings.from_env(s.to_env()) == s


def test_config_file_and_environment_overrides_it(tmp_path):
    config = tmp_path / "serve.yaml"
    config.write_text("max_ids: 7\nport: 8080\ndata: /from-file\n")
    s = Settings.from_env({**BASE, "CHURNKIT_CONFIG": str(config)})
    assert (s.max_ids, s.port, s.data) == (7, 8080, "/data")
    config.write_text("max_idz: 7\n")
    with pytest.raises(SettingsError, match="unknown settings max_idz"):
        Settings.from_env({**BASE, "CHURNKIT_CONFIG": str(config)})


@pytest.mark.parametrize(("env", "words"), [
    ({"CHURNKIT_DATA": "/data"}, "CHURNKIT_MODEL is not set"),
    ({"CHURNKIT_MODEL": "m"}, "CHURNKIT_DATA is not set"),
    ({**BASE, "CHURNKIT_MAX_IDS": "many"}, "CHURNKIT_MAX_IDS='many': expected a number"),
    ({**BASE, "CHURNKIT_MAX_IDS": "0"}, "CHURNKIT_MAX_IDS must be >= 1"),
    ({**BASE, "CHURNKIT_BATCH_WAIT_MS": "-1"}, "CHURNKIT_BATCH_WAIT_MS must be >= 0"),
])
def test_bad_settings_name_the_variable(env, words):
    with pytest.raises(SettingsError, match=words):
        Settings.from_env(env)


def test_workers_are_read_before_the_other_settings(tmp_path):
    # the service module needs the count at import, even before MODEL and DATA are checked
    assert workers_setting({}) == default_workers() == Settings.from_env(BASE).workers
    assert 1 <= default_workers() <= 4
    assert workers_setting({"CHURNKIT_WORKERS": "2"}) == 2
    config = tmp_path / "serve.yaml"
    config.write_text("workers: 3\n")
    assert workers_setting({"CHURNKIT_CONFIG": str(config)}) == 3
    assert workers_setting({"CHURNKIT_CONFIG": str(config), "CHURNKIT_WORKERS": "2"}) == 2
    for bad, words in (("0", "CHURNKIT_WORKERS must be >= 1"),
                       ("two", "CHURNKIT_WORKERS='two': expected a number")):
        with pytest.raises(SettingsError, match=words):
            workers_setting({"CHURNKIT_WORKERS": bad})
        with pytest.raises(SettingsError, match=words):
            Settings.from_env({**BASE, "CHURNKIT_WORKERS": bad})
    assert Settings.from_env({**BASE, "CHURNKIT_WORKERS": "2"}).workers == 2

