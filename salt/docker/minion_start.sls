{#- state.sls docker.minion_start — run by the master's reactor on salt/minion/<id>/start:
  finish or roll back an apply that power loss interrupted, log in to the registries,
  then pre-pull a release that was queued while the device was offline. -#}
berth-release-recover:
  module.run:
    - docker.release_recover: []

include:
  - docker.registries
  - docker.prepull

extend:
  berth-docker-registries:
    docker_release:
      - require:
        - module: berth-release-recover
  berth-prepull-now:
    module:
      - require:
        - docker_release: berth-docker-registries
