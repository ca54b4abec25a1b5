{#- state.sls docker.prepull — pull a pending release's images while the device is awake,
  now and on a schedule, so the apply on the sleep path only swaps containers.
  Settings (config.get): berth:prepull:minutes (default 15), berth:prepull:splay (60 s). -#}
berth-prepull-schedule:
  schedule.present:
    - name: berth-prepull
    - function: docker.release_pull
    - minutes: {{ salt['config.get']('berth:prepull:minutes', 15) }}
    - splay: {{ salt['config.get']('berth:prepull:splay', 60) }}
    - maxrunning: 1
    - persist: True

berth-prepull-now:
  module.run:
    - docker.release_pull: []
