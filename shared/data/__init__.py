"""Site data helpers shared by the tasks: label manifests, patient-level splits."""

from shared.data.manifest import read_label_manifest
from shared.data.split import split_by_patient

__all__ = ["read_label_manifest", "split_by_patient"]
