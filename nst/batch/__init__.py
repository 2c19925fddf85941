"""Many images at once: content images with parameter sweeps, run in this process, in worker
processes or on a Ray cluster, each output written atomically with a line in the manifest.

`driver.stylize_batch` is the entry point; `jobs` plans the outputs, `worker` runs them (one
`Stylizer` per process), `local` and `cluster` schedule them, `manifest` and `sheet` record them.
"""

from nst.batch.driver import BatchInterrupted, BatchResult, Execution, stylize_batch
from nst.batch.jobs import BatchEvent, Job
from nst.batch.manifest import MANIFEST

__all__ = ["MANIFEST", "BatchEvent", "BatchInterrupted", "BatchResult", "Execution", "Job", "stylize_batch"]
