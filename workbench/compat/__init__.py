"""Drop-in entry points for code written against the anchors' libraries: change the import line only.

* PyHessian: ``from pyhessian import hessian`` → ``from workbench.compat import hessian``.
* davda54/sam: ``from sam import SAM`` → ``from workbench.optim import SAM`` (``adaptive=True`` included), and its
  ``bypass_bn`` helpers → ``from workbench.optim import disable_running_stats, enable_running_stats``.
"""

from workbench.compat.pyhessian_api import hessian

__all__ = ["hessian"]
