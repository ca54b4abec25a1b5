# state.sls docker.registries — log in to every registry in pillar docker:registries
# (skips the ones already logged in). Run at minion start.
berth-docker-registries:
  docker_release.registries_logged_in: []
