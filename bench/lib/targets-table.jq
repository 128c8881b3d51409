# Prints the `targets` object of bench/lib/targets.jq as a table.
def yes(x): if x then "met" else "NOT met" end;
"performance targets (load average \(.load_average)):",
"  throughput gateway / nginx    : \(.throughput_ratio.value)  (\(.throughput_ratio.gateway_rps) / \(.throughput_ratio.nginx_rps) req/s; target ≥ 0.25) \(yes(.throughput_ratio.met))",
"  p99 added at \(.added_p99_ms_at_fixed_rate.rate) req/s        : \(.added_p99_ms_at_fixed_rate.value) ms  (\(.added_p99_ms_at_fixed_rate.gateway_p99_ms) − \(.added_p99_ms_at_fixed_rate.nginx_p99_ms); p50 +\(.added_p99_ms_at_fixed_rate.added_p50_ms); target ≤ 2) \(yes(.added_p99_ms_at_fixed_rate.met))",
"  RSS idle after the load runs  : \(.rss_idle_after_load_mib.value) MiB  (\(.rss_idle_after_load_mib.at_start) at start; target ≤ 64) \(yes(.rss_idle_after_load_mib.met))",
"  peak RSS, 1,000 connections   : \(.rss_peak_1000_connections_mib.value) MiB  (target ≤ 96) \(yes(.rss_peak_1000_connections_mib.met))",
"  failed, 1,000 connections     : \(.failed_1000_connections.value)  (\(.failed_1000_connections.non_2xx) non-2xx, \(.failed_1000_connections.socket_errors) socket errors of \(.failed_1000_connections.requests); target 0) \(yes(.failed_1000_connections.met))",
(if .audit_append_to_copy == null then "  audit append / COPY           : not run"
 else "  audit append / COPY           : \(.audit_append_to_copy.value)  (\(.audit_append_to_copy.append_events_per_second) events/s vs \(.audit_append_to_copy.copy_rows_per_second) rows/s; rounds \(.audit_append_to_copy.rounds); target ≥ 0.8) \(yes(.audit_append_to_copy.met))" end)
