package storage

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// kitLogger lets objstore's providers, which log through go-kit
// (github.com/go-kit/log.Logger), write to a slog.Logger. The go-kit "level"
// and "msg" keys become the record's level and message; any key that names a
// secret is redacted.
type kitLogger struct{ l *slog.Logger }

// Log implements github.com/go-kit/log.Logger.
func (k kitLogger) Log(keyvals ...any) error {
	level := slog.LevelInfo
	msg := ""
	attrs := make([]slog.Attr, 0, len(keyvals)/2)
	for i := 0; i < len(keyvals); i += 2 {
		key := fmt.Sprint(keyvals[i])
		var val any = "(MISSING)"
		if i+1 < len(keyvals) {
			val = keyvals[i+1]
		}
		switch {
		case key == "level":
			level = kitLevel(fmt.Sprint(val))
		case key == "msg" && msg == "":
			msg = fmt.Sprint(val)
		case strings.Contains(strings.ToLower(key), "secret"):
			attrs = append(attrs, slog.String(key, "<redacted>"))
		default:
			attrs = append(attrs, slog.Any(key, val))
		}
	}
	k.l.LogAttrs(context.Background(), level, msg, attrs...)
	return nil
}

func kitLevel(s string) slog.Level {
	switch s {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}
