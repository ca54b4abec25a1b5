"""The device's release pillar as the ``docker`` execution module and the
``docker_release`` state read it: ``docker:release``, ``docker:registries`` and
``docker:error`` (set by the ext_pillar when the fleet API could not be asked)."""


class PillarError(Exception):
    """Pillar ``docker:error`` is set: the release pillar could not be built."""


def get(salt, key, default=None):
    """``pillar.get`` through the loader's ``__salt__``."""
    # Salt 3008 masks pillar values returned by pillar.get unless asked for the real ones
    return salt["pillar.get"](key, default, unmask=True)


def release_and_registries(salt, release=None, registries=None):
    """``(release, registries)``: the ones given, else the pillar's. Without a given
    release, raises :class:`PillarError` when ``docker:error`` is set."""
    if release is None:
        error = get(salt, "docker:error")
        if error:
            raise PillarError(error)
        release = get(salt, "docker:release", None)
    if registries is None:
        registries = get(salt, "docker:registries", {}) or {}
    return release, registries
