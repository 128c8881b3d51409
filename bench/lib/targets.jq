# The performance targets, each figure next to the baseline it was measured against in the
# same run. Input: bench/results/data-path.json; $append: the audit-append result ([] when
# it was not run); $load: the load average when the figures were taken.
def r(x): (x * 100 | round) / 100;
. as $d
| ($append[0] // null) as $a
| ($d.memory.load_1000_connections) as $m
| {
    load_average: $load,
    throughput_ratio: {
      value: r($d.saturation.throughput_ratio),
      gateway_rps: ($d.saturation.gateway.rps | round), nginx_rps: ($d.saturation.nginx.rps | round),
      target: 0.25, goal: 0.5, met: ($d.saturation.throughput_ratio >= 0.25)
    },
    added_p99_ms_at_fixed_rate: {
      value: r($d.fixed_rate.added_ms.p99), rate: $d.fixed_rate.rate,
      gateway_p99_ms: r($d.fixed_rate.gateway.latency_ms.p99),
      nginx_p99_ms: r($d.fixed_rate.nginx.latency_ms.p99),
      added_p50_ms: r($d.fixed_rate.added_ms.p50),
      target: 2, goal: 1, met: ($d.fixed_rate.added_ms.p99 <= 2)
    },
    rss_idle_after_load_mib: {
      value: r($d.memory.rss_mib_after_1000_connections),
      at_start: r($d.memory.rss_mib_start),
      after_64_connection_runs: r($d.memory.rss_mib_idle_after_load),
      target: 64, goal: 32, met: ($d.memory.rss_mib_after_1000_connections <= 64)
    },
    rss_peak_1000_connections_mib: {
      value: r($d.memory.rss_mib_peak_1000_connections), at_start: r($d.memory.rss_mib_start),
      target: 96, met: ($d.memory.rss_mib_peak_1000_connections <= 96)
    },
    failed_1000_connections: {
      value: ($m.errors.status + $m.errors.connect + $m.errors.read + $m.errors.write
              + $m.errors.timeout),
      non_2xx: $m.errors.status,
      socket_errors: ($m.errors.connect + $m.errors.read + $m.errors.write + $m.errors.timeout),
      requests: $m.requests, rps: ($m.rps | round), p99_ms: r($m.latency_ms.p99),
      target: 0,
      met: (($m.errors.status + $m.errors.connect + $m.errors.read + $m.errors.write
             + $m.errors.timeout) == 0)
    },
    audit_append_to_copy: (if $a == null then null else {
      value: r($a.append_to_copy_ratio),
      append_events_per_second: $a.group_commit.events_per_second,
      copy_rows_per_second: $a.copy_baseline.rows_per_second,
      events: $a.group_commit.events, writers: $a.writers,
      rounds: ($a.rounds | map(r(.append_events_per_second / .copy_rows_per_second))),
      target: 0.8, goal: 1.0, met: ($a.append_to_copy_ratio >= 0.8)
    } end)
  }
