"""The backup engine's side-effect-free core: guarded git snapshots, shadow repositories, restore.

`take_snapshot` commits a working tree onto ``refs/labmind/snapshots/<branch>`` without
touching the user's index, HEAD, branches, config or files; `Guards` keep secrets and
huge files out; `open_shadow` gives a folder that is not a repository its git storage in
labmind's data folder; `restore` writes a snapshot into a new folder. `push_snapshot`
fast-forwards a snapshot to ``refs/heads/labmind/<host>/<branch>`` on a remote (never
forcing, never writing the user's config), with tokens from a `CredentialSource` such
as `KeyringCredentials`.
"""

from .credentials import (
    CredentialError,
    CredentialSource,
    KeyringCredentials,
    StaticCredentials,
)
from .guards import (
    DEFAULT_MAX_FILE_BYTES,
    DetectSecretsScanner,
    Guards,
    HeldBack,
    SecretScanner,
    secret_name_match,
)
from .push import (
    PushResult,
    PushStatus,
    SshKey,
    push_branches_ahead,
    push_ref,
    push_snapshot,
    remote_url,
    set_network_timeouts,
    snapshot_remote_ref,
)
from .restore import RestoreError, restore
from .shadow import DEFAULT_EXCLUDES, open_shadow, shadow_dir
from .snapshot import (
    ConcurrentSnapshotError,
    SnapshotError,
    SnapshotInterrupted,
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
    "CredentialError",
    "CredentialSource",
    "DetectSecretsScanner",
    "Guards",
    "HeldBack",
    "KeyringCredentials",
    "PushResult",
    "PushStatus",
    "RestoreError",
    "SecretScanner",
    "SnapshotError",
    "SnapshotInterrupted",
    "SnapshotResult",
    "SshKey",
    "StaticCredentials",
    "current_branch",
    "open_repository",
    "open_shadow",
    "push_branches_ahead",
    "push_ref",
    "push_snapshot",
    "remote_url",
    "restore",
    "secret_name_match",
    "set_network_timeouts",
    "shadow_dir",
    "snapshot_ref",
    "snapshot_remote_ref",
    "take_snapshot",
    "update_ref_if_unchanged",
]
