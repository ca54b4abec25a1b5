# state.sls docker.release — apply the device's release from pillar docker:release
# (docs/release.md). Refuses to run when pillar docker:error is set.
berth-docker-release:
  docker_release.applied: []
