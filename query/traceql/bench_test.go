package traceql

import "testing"

func BenchmarkParse(b *testing.B) {
	for _, c := range []struct{ name, query string }{
		{"simple", `{ resource.service.name = "checkout" }`},
		{"errors", `{ status = error && span.http.status_code >= 500 } | by(resource.service.name) | count() > 1`},
		{"structural", `{ resource.service.name = "frontend" && kind = server } >> { span.db.system = "postgresql" && duration > 100ms }`},
		{"regex", `{ span.http.url =~ "https?://api\\.example\\.com/v[0-9]+/orders/.*" && name != "healthz" } | select(span.http.method, duration)`},
		{"grafana", `{ resource.service.name = "api" && span.http.route = "/orders/{id}" && duration > 250ms && status != ok } | avg(duration) > 1s with (most_recent=true)`},
		{"metrics", `{ status = error && resource.service.name = "api" } | quantile_over_time(duration, 0.5, 0.9, 0.99) by (resource.service.name, span.http.route) > 0.1 | topk(10) with (sample=0.1)`},
		{"compare", `{ resource.service.name = "api" } | compare({ status = error && duration > 1s }, 5)`},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.query)))
			for b.Loop() {
				if _, err := Parse(c.query); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
