{# A device (re)connected: fresh pillar, registry logins, pre-pull of a pending release.
   The release itself is applied on the device's sleep path (salt/docker/sleep.sls). #}
berth_minion_start_{{ data['id'] }}:
  local.state.sls:
    - tgt: {{ data['id'] | json }}
    - args:
      - mods: docker.minion_start
