{# berth/release/result fired by a device (event.send): forward it to the API. #}
berth_report_{{ data['id'] }}:
  runner.berth.report:
    - args:
      - minion_id: {{ data['id'] | json }}
      - result: {{ data.get('data', {}) | json }}
