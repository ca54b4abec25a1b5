{#- state.sls docker.sleep — install the device's "about to sleep" hook (docs/fleet.md).

  A oneshot systemd unit ordered Before=sleep.target and WantedBy=sleep.target runs
  berth-before-sleep, which applies the pending release (state.sls docker.release)
  while the device is idle. A power manager that does not go through sleep.target
  runs the script itself and waits for it to exit before suspending.

  When the minion runs the berth_localapi engine, the hook (berth.sleephook, a few
  milliseconds of stdlib Python) asks the running minion to apply through the local
  API and waits for the answer; salt-call (a new Salt process, seconds of CPU) is
  only the fallback when the local API cannot be reached. A minion busy with another
  state run is waited for up to the timeout; after that the hook has the device report
  the release failed with the reason (docs/fleet.md "A busy minion"). The salt-call
  fallback keeps the same promise (the hook runs it, reads its JSON result, retries it
  while the minion is busy and reports with the same salt-call line).

  Settings (minion config or pillar, via config.get):
    berth:sleep:script    path of the hook script   (/usr/local/sbin/berth-before-sleep)
    berth:sleep:unit_dir  systemd unit directory    (/etc/systemd/system)
    berth:sleep:timeout   seconds the hook waits for a busy minion / a salt-call that has not
                          started (1200: pulls were done while awake); the unit allows
                          120 s more, for the failure report (queued on the device
                          when the master is away)
    berth:sleep:salt_call salt-call to run          (next to the minion's python, else PATH)
-#}
{%- set script = salt['config.get']('berth:sleep:script', '/usr/local/sbin/berth-before-sleep') %}
{%- set unit_dir = salt['config.get']('berth:sleep:unit_dir', '/etc/systemd/system') %}
{%- set timeout = salt['config.get']('berth:sleep:timeout', 1200) | int %}
{%- set beside_python = grains['pythonexecutable'].rsplit('/', 1)[0] ~ '/salt-call' %}
{%- set salt_call = salt['config.get']('berth:sleep:salt_call',
      beside_python if salt['file.file_exists'](beside_python) else 'salt-call') %}
{%- set unit = unit_dir ~ '/berth-before-sleep.service' %}
{#- the release engine's lock: the hook stops a salt-call that has not started applying #}
{%- set release_lock = (opts.get('docker.release_state_dir') or opts['cachedir'] ~ '/berth') ~ '/release.lock' %}
{%- set local_api = salt['minionutil.local_api_url']() %}
{%- set salt_call_line = salt_call ~ ' -c ' ~ opts['conf_file'].rsplit('/', 1)[0] ~
      ' --retcode-passthrough --log-level=warning --out=highstate --state-output=changes'
      ~ ' --state-verbose=False state.sls docker.release' %}

berth-before-sleep-script:
  file.managed:
    - name: {{ script }}
    - mode: '0755'
    - makedirs: True
    - contents: |
        #!/bin/sh
        # Berth: apply the pending Docker release before this device sleeps.
        # Run by berth-before-sleep.service (Before=sleep.target) or by the power manager.
        # Exit status 0 = release applied or nothing to do; output (what changed) goes to
        # the journal. The device reports the outcome to the fleet API either way.
        {%- if local_api %}
        # The running minion applies (local API {{ local_api }}); salt-call only if unreachable.
        exec {{ grains['pythonexecutable'] }} {{ salt['minionutil.sleep_hook_program']() }} --local-api '{{ local_api }}' --timeout {{ timeout }} --release-lock '{{ release_lock }}' -- {{ salt_call_line }}
        {%- else %}
        # No local API engine: salt-call applies; the hook waits while the minion is busy and
        # has the device report failed with the reason when it cannot apply.
        exec {{ grains['pythonexecutable'] }} {{ salt['minionutil.sleep_hook_program']() }} --timeout {{ timeout }} --release-lock '{{ release_lock }}' -- {{ salt_call_line }}
        {%- endif %}

berth-before-sleep-unit:
  file.managed:
    - name: {{ unit }}
    - mode: '0644'
    - makedirs: True
    - contents: |
        [Unit]
        Description=Berth: apply the pending Docker release before the device sleeps
        Before=sleep.target

        [Service]
        Type=oneshot
        ExecStart={{ script }}
        TimeoutStartSec={{ timeout + 120 }}

        [Install]
        WantedBy=sleep.target
    - require:
      - file: berth-before-sleep-script

berth-before-sleep-daemon-reload:
  cmd.run:
    - name: systemctl daemon-reload
    - onlyif: test -d /run/systemd/system
    - onchanges:
      - file: berth-before-sleep-unit

berth-before-sleep-enabled:
  cmd.run:
    - name: systemctl enable berth-before-sleep.service
    - onlyif: test -d /run/systemd/system && test "{{ unit_dir }}" = /etc/systemd/system
    - unless: systemctl is-enabled --quiet berth-before-sleep.service
    - require:
      - cmd: berth-before-sleep-daemon-reload
