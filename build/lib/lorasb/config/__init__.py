"""The configs in ``conf/``: their resolvers, and checks of the user's choices."""

from lorasb.config.choices import CONF_DIR, check_group_choices, check_model_fits_task, group_options
from lorasb.config.resolvers import register_resolvers

__all__ = ["CONF_DIR", "check_group_choices", "check_model_fits_task", "group_options", "register_resolvers"]
