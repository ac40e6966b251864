"""TrajectoryCache: the trajectories of the four methods, recomputed only where a change of settings requires it.

A method's trajectory depends on the landscape, the start and its own settings (``METHOD_SETTINGS``), so the cache
keys each trajectory by exactly those: a new ρ recomputes SAM, Eigen-SAM and X-SAM but not GD, a new X-SAM switch
only X-SAM, and going back to earlier settings recomputes nothing. Fewer steps cut a longer run already computed
(``Trajectory.truncated``); more steps run again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence

from workbench._checks import check_int
from workbench.toy.landscapes import Landscape, check_point
from workbench.toy.trajectory import METHOD_SETTINGS, METHODS, RunSettings, Trajectory, run_trajectory


class TrajectoryCache:
    """Trajectories by landscape, method, start and the method's own settings, the least recently used dropped
    beyond ``max_entries``.

    Attributes:
        computed: the methods the last ``trajectories`` call had to run (the others came from the cache).
    """

    def __init__(self, max_entries: int = 128) -> None:
        self.max_entries = check_int("max_entries", max_entries, minimum=1)
        self.computed: tuple[str, ...] = ()
        self._entries: OrderedDict[Hashable, Trajectory] = OrderedDict()

    def trajectories(
        self,
        landscape_key: Hashable,
        landscape: Landscape,
        start: Sequence[float],
        settings: RunSettings,
        methods: Sequence[str] = METHODS,
    ) -> dict[str, Trajectory]:
        """The trajectory of each of ``methods`` from ``start`` with ``settings`` on ``landscape``, by method.

        Args:
            landscape_key: names ``landscape`` with its parameters (e.g. the scenario's name): the cache tells
                landscapes apart by it alone.
            landscape, start, settings, methods: as for ``workbench.toy.run_all``.
        """
        start = check_point("start", start)
        found: dict[str, Trajectory] = {}
        computed = []
        for method in methods:
            own = (getattr(settings, name) for name in METHOD_SETTINGS[method] if name != "steps")
            key = (landscape_key, method, start, *own)
            cached = self._entries.get(key)
            if cached is None or cached.steps < settings.steps:
                cached = run_trajectory(landscape, start, method, settings)
                computed.append(method)
            self._entries[key] = cached
            self._entries.move_to_end(key)
            found[method] = cached if cached.steps == settings.steps else cached.truncated(settings.steps)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        self.computed = tuple(computed)
        return found
