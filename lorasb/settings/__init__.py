"""Typed settings: every key of the ``optim``, ``init``, ``gradient_cache``, ``model``, ``data`` and ``eval`` config
blocks with its type, default, allowed values and help, in one place.

The Hydra configs take their defaults and types from these dataclasses
(:func:`lorasb.config.store.register_settings`), the config check its rules
(:mod:`lorasb.config.schema`), and the Lightning module reads them as attributes once it has
converted its arguments (:func:`lorasb.settings.convert.settings_from`). The lowest layer of the
package: it imports nothing of lorasb and no heavy library, so the command line checks a config
before torch loads.
"""
