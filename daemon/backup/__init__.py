"""The backup engine's side-effect-free core: guarded git snapshots, shadow repositories, restore.

`take_snapshot` commits a working tree onto ``refs/labmind/snapshots/<branch>`` without
touching the user's index, HEAD, branches, config or files; `Guards` keep secrets and
huge files out; `open_shadow` gives a folder that is not a repository its git storage in
labmind's data folder; `restore` writes a snapshot into a new folder.
"""

from .guards import (
    DEFAULT_MAX_FILE_BYTES,
    DetectSecretsScanner,
    Guards,
    HeldBack,
    SecretScanner,
    secret_name_match,
)
from .restore import RestoreError, restore
from .shadow import DEFAULT_EXCLUDES, open_shadow, shadow_dir
from .snapshot import (
    ConcurrentSnapshotError,
    SnapshotError,
    SnapshotResult,
    current_branch,
    open_repository,
    snapshot_ref,
    take_snapshot,
    update_ref_if_unchanged,
)

__all__ = [
    "DEFAULT_EXCLUDES",
    "DEFAULT_MAX_FILE_BYTES",
    "ConcurrentSnapshotError",
    "DetectSecretsScanner",
    "Guards",
    "HeldBack",
    "RestoreError",
    "SecretScanner",
    "SnapshotError",
    "SnapshotResult",
    "current_branch",
    "open_repository",
    "open_shadow",
    "restore",
    "secret_name_match",
    "shadow_dir",
    "snapshot_ref",
    "take_snapshot",
    "update_ref_if_unchanged",
]
