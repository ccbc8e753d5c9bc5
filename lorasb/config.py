"""OmegaConf resolvers the configs in ``conf/`` use."""

from omegaconf import OmegaConf

from lorasb.models import package_dir


def register_resolvers() -> None:
    """``${package_dir:pkg}``: the folder of an installed package (offline model weights)."""
    OmegaConf.register_new_resolver("package_dir", package_dir, replace=True)
