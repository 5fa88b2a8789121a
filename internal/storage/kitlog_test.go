package storage

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

func TestKitLogger(t *testing.T) {
	var buf bytes.Buffer
	var l log.Logger = kitLogger{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}

	_ = level.Warn(l).Log("msg", "could not guess file size", "name", "t/b/data.parquet", "secret_key", "hunter2")
	_ = level.Debug(l).Log("msg", "trace")
	_ = l.Log("odd")
	out := buf.String()
	for _, want := range []string{
		`level=WARN msg="could not guess file size" name=t/b/data.parquet secret_key=<redacted>`,
		`level=DEBUG msg=trace`,
		`level=INFO msg="" odd=(MISSING)`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hunter2") {
		t.Errorf("secret logged:\n%s", out)
	}
}
