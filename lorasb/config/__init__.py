"""The configs in ``conf/``: their resolvers, the typed settings they build on, and checks of the user's choices and values."""

from lorasb.config.choices import CONF_DIR, check_group_choices, check_model_fits_task, group_options
from lorasb.config.resolvers import register_resolvers
from lorasb.config.schema import ConfigError, check_config, config_problems
from lorasb.config.store import register_settings

__all__ = [
    "CONF_DIR",
    "ConfigError",
    "check_config",
    "check_group_choices",
    "check_model_fits_task",
    "config_problems",
    "group_options",
    "register_resolvers",
    "register_settings",
]
