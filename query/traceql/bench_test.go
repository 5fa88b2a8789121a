package traceql

import "testing"

func BenchmarkParse(b *testing.B) {
	for _, c := range []struct{ name, query string }{
		{"simple", `{ resource.service.name = "checkout" }`},
		{"errors", `{ status = error && span.http.status_code >= 500 } | by(resource.service.name) | count() > 1`},
		{"structural", `{ resource.service.name = "frontend" && kind = server } >> { span.db.system = "postgresql" && duration > 100ms }`},
		{"regex", `{ span.http.url =~ "https?://api\\.example\\.com/v[0-9]+/orders/.*" && name != "healthz" } | select(span.http.method, duration)`},
		{"grafana", `{ resource.service.name = "api" && span.http.route = "/orders/{id}" && duration > 250ms && status != ok } | avg(duration) > 1s with (most_recent=true)`},
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
