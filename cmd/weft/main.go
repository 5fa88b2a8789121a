// Command weft is the weft tracing backend: one binary whose -target chooses
// the components a process runs ("all" runs everything in one process).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"github.com/weftdb/weft/cmd/weft/app"
	"github.com/weftdb/weft/cmd/weft/blockscli"
	"github.com/weftdb/weft/cmd/weft/config"
	"github.com/weftdb/weft/cmd/weft/redactcli"
)

// Set with -ldflags "-X main.version=...".
var (
	version   = "dev"
	revision  = "unknown"
	branch    = "unknown"
	buildUser = "unknown"
	buildDate = "unknown"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		if !errors.Is(err, errFlagsReported) {
			fmt.Fprintln(os.Stderr, "weft:", err)
		}
		os.Exit(1)
	}
}

// errFlagsReported marks a command-line error the flag package has already
// printed, with the usage.
var errFlagsReported = errors.New("invalid command line")

func run(args []string, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "redact" { // submit and follow a redaction
		if err := redactcli.Redact(context.Background(), args[1:], os.Stdout, stderr); !errors.Is(err, flag.ErrHelp) {
			return err
		}
		return nil
	}
	if len(args) > 0 && args[0] == "blocks" { // operators' commands on blocks
		if err := blockscli.Run(args[1:], os.Stdout, stderr); err != nil {
			if errors.Is(err, blockscli.ErrUsage) {
				fmt.Fprintln(stderr, "weft:", err)
				return errFlagsReported
			}
			return err
		}
		return nil
	}
	fs := flag.NewFlagSet("weft", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config.file", "", "YAML configuration file; without it weft runs monolithic on the embedded default")
	expandEnv := fs.Bool("config.expand-env", false, "expand ${VAR} and ${VAR:-default} in the configuration file")
	target := fs.String("target", "", "components to run: one of these, or several separated by commas (default all)\n"+strings.TrimRight(app.TargetHelp(), "\n"))
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: weft [flags]                 run weft (the components of -target)
       weft blocks list|show ...     list a tenant's blocks, show one (weft blocks -h)
       weft redact ...               remove traces from blocks, through the backend scheduler (weft redact -h)

flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil // -h and -help print the usage, which is not a failure
		}
		return fmt.Errorf("%w: %w", errFlagsReported, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	build := app.BuildInfo{Version: version, Revision: revision, Branch: branch, BuildUser: buildUser, BuildDate: buildDate, GoVersion: runtime.Version()}
	if *showVersion {
		fmt.Printf("weft, version %s (branch: %s, revision: %s)\n  build user: %s\n  build date: %s\n  go version: %s\n",
			version, branch, revision, buildUser, buildDate, runtime.Version())
		return nil
	}

	cfg := config.Default()
	var report config.Report
	if *configFile != "" {
		data, err := os.ReadFile(*configFile)
		if err != nil {
			return fmt.Errorf("cannot read the config file: %w", err)
		}
		if cfg, report, err = config.LoadReport(*configFile, data, *expandEnv); err != nil {
			return fmt.Errorf("invalid configuration:\n%w", err)
		}
	}
	if *target != "" {
		cfg.Target = *target
	}
	if err := app.CheckTarget(cfg.Target); err != nil {
		return err
	}
	logger := newLogger(stderr, cfg.Server.LogLevel, cfg.Server.LogFormat)
	if len(report.Ignored) > 0 {
		logger.Warn("config keys that Grafana Tempo knows and weft does not use yet are ignored", "keys", strings.Join(report.Ignored, ","))
	}
	if len(report.Tempo2) > 0 {
		logger.Warn(config.Tempo2WarningMsg, report.Tempo2Args()...)
	}

	a, err := app.New(cfg, logger, build)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := a.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	stop()
	logger.Info("shutting down: stopping intake and draining the pipeline")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Server.GracefulShutdownTimeout)
	defer cancel()
	if err := a.Shutdown(sctx); err != nil {
		return fmt.Errorf("cannot shut down cleanly: %w", err)
	}
	if errors.Is(sctx.Err(), context.DeadlineExceeded) {
		return errors.New("cannot shut down cleanly: server.graceful_shutdown_timeout passed")
	}
	logger.Info("stopped")
	return nil
}

func newLogger(w io.Writer, level, format string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: l}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
