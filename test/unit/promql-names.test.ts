import { describe, expect, it } from "vitest";
import { exportedNames, familiesOf, metricNamesOf, missingMetrics } from "../support/promql";

describe("metricNamesOf (the dashboard and alert check's PromQL reader)", () => {
  it("names metrics, not functions, aggregations, modifiers, labels or keywords", () => {
    expect(metricNamesOf('histogram_quantile(0.99, sum by (le, controller) (rate(controller_runtime_reconcile_time_seconds_bucket{job=~"$job"}[$__rate_interval])))')).toEqual([
      "controller_runtime_reconcile_time_seconds_bucket",
    ]);
    expect(metricNamesOf("kube_on_kube_certificates_expire_at_seconds - time() < 7 * 86400")).toEqual(["kube_on_kube_certificates_expire_at_seconds"]);
    expect(metricNamesOf('sum(leader_election_master_status{name="x"}) != 1 or absent(leader_election_master_status{name="x"})')).toEqual(["leader_election_master_status"]);
    expect(metricNamesOf("sum(rate(a_total[5m])) by (name) / on(name) group_left sum without (le) (b_sum offset 1h) unless c > bool 0")).toEqual(["a_total", "b_sum", "c"]);
    expect(metricNamesOf('max_over_time(x{a="}{[(",b!~\'y\'}[1h:5m]) and nodejs_eventloop_lag_p99_seconds > 0.5e0')).toEqual(["x", "nodejs_eventloop_lag_p99_seconds"]);
    expect(metricNamesOf("label_values(controller_runtime_reconcile_total, job)")).toEqual(["controller_runtime_reconcile_total"]);
  });

  it("refuses what it cannot read, so a typo fails the check", () => {
    expect(() => metricNamesOf("sum(rate(a[5m])")).toThrow(/unclosed \(/);
    expect(() => metricNamesOf("rate(a[5 m])")).toThrow(/bad range/);
    expect(() => metricNamesOf('a{b="c}')).toThrow(/unterminated|unclosed/);
    expect(() => metricNamesOf("a ; b")).toThrow(/unexpected ";"/);
    expect(() => metricNamesOf("sum by (le controller) (a)")).toThrow(/bad label list/);
  });
});

describe("missingMetrics", () => {
  it("reports a metric the scrape does not export, and accepts a histogram's series", () => {
    const scrape = ["# HELP h a histogram", "# TYPE h histogram", 'h_bucket{le="1"} 0', "# TYPE c counter", "c 1", ""].join("\n");
    const exported = exportedNames(familiesOf(scrape));
    expect(missingMetrics(["rate(h_bucket[5m]) / rate(h_count[5m])", "h_sum + c"], exported)).toEqual([]);
    expect(missingMetrics(["rate(kube_on_kube_no_such_metric_total[5m]) + c"], exported)).toEqual(["kube_on_kube_no_such_metric_total (in: rate(kube_on_kube_no_such_metric_total[5m]) + c)"]);
  });
});
