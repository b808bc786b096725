// Command kms_exporter exports Huawei Cloud KMS quotas, key counts and key
// states as Prometheus metrics.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"
	slgk "github.com/tjhop/slog-gokit"

	"github.com/kms-exporter/kms_exporter/collector"
	"github.com/kms-exporter/kms_exporter/config"
)

// settings are the parsed flags.
type settings struct {
	configFile    string
	region        string
	projectID     string
	kmsEndpoint   string
	iamEndpoint   string
	timeout       time.Duration
	timeoutOffset time.Duration
	cacheTTL      time.Duration
	rps           float64
	concurrency   int
	collectors    []string // enabled
	tagKeys       []string
	maxTagSeries  int
	keysRefresh   time.Duration
	telemetryPath string
	logLevel      string
	logFormat     string
	demo          bool
	configCheck   bool
	historyLimit  int
	storagePath   string
}

// parseFlags parses args (without the program name) into settings and the
// exporter-toolkit web flags.
func parseFlags(args []string) (*settings, *web.FlagConfig, error) {
	s := &settings{}
	app, enabled, webFlags := flagApp(s)
	if _, err := app.Parse(args); err != nil {
		return nil, nil, err
	}
	s.collectors = []string{}
	for _, c := range collector.All {
		if *enabled[c] {
			s.collectors = append(s.collectors, c)
		}
	}
	switch {
	case s.demo && s.configFile != "":
		return nil, nil, errors.New("--demo and --config.file cannot be used together")
	case s.timeout <= 0:
		return nil, nil, errors.New("--kms.timeout must be positive")
	case s.timeoutOffset < 0:
		return nil, nil, errors.New("--kms.timeout-offset must not be negative")
	case !(s.rps > 0) || math.IsInf(s.rps, 1):
		return nil, nil, errors.New("--kms.requests-per-second must be a positive number")
	case s.concurrency <= 0:
		return nil, nil, errors.New("--kms.concurrency must be positive")
	case s.maxTagSeries < 0:
		return nil, nil, errors.New("--collector.keys.max-tag-series must not be negative")
	case s.historyLimit < 0:
		return nil, nil, errors.New("--history.limit must not be negative")
	case s.telemetryPath == "" || s.telemetryPath[0] != '/':
		return nil, nil, errors.New("--web.telemetry-path must start with /")
	}
	return s, webFlags, nil
}

// flagApp defines every flag, parsed into s, the collector switches (by
// collector name) and the exporter-toolkit's web flags.
func flagApp(s *settings) (*kingpin.Application, map[string]*bool, *web.FlagConfig) {
	app := kingpin.New("kms_exporter", "Prometheus exporter for Huawei Cloud KMS (DEW): CMK quotas, key counts, key states and scheduled deletions.")
	app.Version(version.Print("kms_exporter"))
	app.HelpFlag.Short('h')
	app.Flag("config.file", "YAML config file with credentials and targets. Without it, one target is built from --kms.region and the HUAWEICLOUD_SDK_* environment variables.").StringVar(&s.configFile)
	app.Flag("kms.region", "Region of the single target (without --config.file).").StringVar(&s.region)
	app.Flag("kms.project-id", "Project of the single target; looked up in IAM by region name when absent.").Envar("HUAWEICLOUD_SDK_PROJECT_ID").StringVar(&s.projectID)
	app.Flag("kms.endpoint", "KMS endpoint override of the single target (default: the region's public endpoint, https://kms.{region}.myhuaweicloud.com; myhuaweicloud.eu for eu-west-101).").StringVar(&s.kmsEndpoint)
	app.Flag("iam.endpoint", "IAM endpoint for project lookup and IAM tokens (default: the IAM endpoint of each target's region, https://iam.{region}.myhuaweicloud.com).").Envar("HUAWEICLOUD_SDK_IAM_ENDPOINT").StringVar(&s.iamEndpoint)
	app.Flag("kms.timeout", "Upper bound for one scrape; the X-Prometheus-Scrape-Timeout-Seconds header minus --kms.timeout-offset lowers it.").Default("30s").DurationVar(&s.timeout)
	app.Flag("kms.timeout-offset", "Subtracted from the scrape timeout Prometheus sends, to leave time for the answer.").Default("0.5s").DurationVar(&s.timeoutOffset)
	app.Flag("kms.cache-ttl", "Reuse a target's results younger than this (0: fetch on every scrape).").Default("0s").DurationVar(&s.cacheTTL)
	app.Flag("kms.requests-per-second", "Client-side rate limit per credential (KMS allows 20 requests per second per account).").Default("10").Float64Var(&s.rps)
	app.Flag("kms.concurrency", "API requests in flight per credential.").Default("8").IntVar(&s.concurrency)
	enabled := map[string]*bool{}
	for _, c := range collector.All {
		enabled[c] = app.Flag("collector."+c, "Enable the "+c+" collector.").Default("true").Bool()
	}
	app.Flag("collector.keys.tag-key", "Tag key exported by kms_keys_by_tag; repeatable (default: all tag keys).").StringsVar(&s.tagKeys)
	app.Flag("collector.keys.max-tag-series", "Cap on kms_keys_by_tag series per target.").Default("500").IntVar(&s.maxTagSeries)
	app.Flag("collector.keys.refresh-interval", "List keys at most this often (0: every scrape).").Default("0s").DurationVar(&s.keysRefresh)
	app.Flag("web.telemetry-path", "Path under which to expose metrics.").Default("/metrics").StringVar(&s.telemetryPath)
	app.Flag("log.level", "Only log messages with the given severity or above. One of: [debug, info, warn, error]").Default("info").EnumVar(&s.logLevel, "debug", "info", "warn", "error")
	app.Flag("log.format", "Output format of log messages. One of: [logfmt, json]").Default("logfmt").EnumVar(&s.logFormat, "logfmt", "json")
	app.Flag("config.check", "Load and check the config and every secret file, print the targets it would watch (discovered ones too when IAM answers), and exit 0 if the config is good, 1 if not.").BoolVar(&s.configCheck)
	app.Flag("demo", "Serve simulated data from the embedded fake KMS API; no cloud account needed.").BoolVar(&s.demo)
	app.Flag("history.limit", "Recent scrapes kept for the landing page and their debug logs (/probe/debug?id=N).").Default("100").IntVar(&s.historyLimit)
	app.Flag("storage.path", "Directory for small state that must survive a restart: the pause of a credential after a failed authentication, so that restarts cannot lock its AK (never a secret). Created if missing.").StringVar(&s.storagePath)
	return app, enabled, kingpinflag.AddFlags(app, ":10567")
}

// newLogger builds the go-kit logger of the exporter, and the *slog.Logger
// the exporter-toolkit wants, writing through the same go-kit logger so that
// every line has one format.
func newLogger(w io.Writer, lvl, format string) (log.Logger, *slog.Logger) {
	var l log.Logger
	if format == "json" {
		l = log.NewJSONLogger(log.NewSyncWriter(w))
	} else {
		l = log.NewLogfmtLogger(log.NewSyncWriter(w))
	}
	var (
		allow level.Option
		sl    slog.Level
	)
	switch lvl {
	case "debug":
		allow, sl = level.AllowDebug(), slog.LevelDebug
	case "warn":
		allow, sl = level.AllowWarn(), slog.LevelWarn
	case "error":
		allow, sl = level.AllowError(), slog.LevelError
	default:
		allow, sl = level.AllowInfo(), slog.LevelInfo
	}
	l = level.NewFilter(l, allow)
	lv := new(slog.LevelVar)
	lv.Set(sl)
	// The slog handler adds time and caller itself, under slog's key names;
	// ours use the same names.
	slogger := slog.New(slgk.NewGoKitHandler(l, lv))
	return log.With(l, "time", log.DefaultTimestampUTC, "caller", log.DefaultCaller), slogger
}

func main() {
	versionFromBuildInfo()
	os.Exit(run(os.Args[1:], os.Stderr, os.Getenv))
}

// versionFromBuildInfo fills in what `make build` stamps with -ldflags when
// the binary was built without them (go build, go run, go install), from
// what the Go toolchain recorded, so build_info and the landing page are
// never blank.
func versionFromBuildInfo() {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	if version.Version == "" {
		version.Version = bi.Main.Version
	}
	for _, kv := range bi.Settings {
		if kv.Key == "vcs.revision" && (version.Revision == "" || version.Revision == "unknown") {
			version.Revision = kv.Value
		}
	}
}

func run(args []string, stderr io.Writer, getenv func(string) string) int {
	s, webFlags, err := parseFlags(args)
	if err != nil {
		fmt.Fprintln(stderr, "kms_exporter:", err)
		return 2
	}
	logger, slogger := newLogger(stderr, s.logLevel, s.logFormat)
	level.Info(logger).Log("msg", "starting kms_exporter", "version", version.Info(), "build_context", version.BuildContext())

	if f := *webFlags.WebConfigFile; f != "" {
		if err := config.CheckFile(f); err != nil {
			level.Error(logger).Log("msg", "cannot start", "err", fmt.Errorf("--web.config.file: %w", err))
			return 1
		}
	}
	a, err := newApp(s, logger, getenv)
	if err != nil {
		level.Error(logger).Log("msg", "cannot start", "err", err)
		return 1
	}
	defer a.close()
	if s.configCheck {
		return a.checkConfig(os.Stdout)
	}
	if err := a.reload(); err != nil {
		// reload has logged the error.
		return 1
	}

	srv := newServer(a.handler(), s.timeout, logger)
	served := make(chan error, 1)
	go func() { served <- web.ListenAndServe(srv, webFlags, slogger) }()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGHUP, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(sig)
	for {
		select {
		case err := <-served:
			if errors.Is(err, http.ErrServerClosed) {
				return 0
			}
			level.Error(logger).Log("msg", "cannot serve", "err", err)
			return 1
		case got := <-sig:
			if got == syscall.SIGHUP {
				a.reload() // logs its own result; a bad config keeps the old one
				continue
			}
			level.Info(logger).Log("msg", "shutting down", "signal", got)
			// In-flight scrapes may finish; they stop at their own deadline anyway.
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			err := srv.Shutdown(ctx)
			cancel()
			if err != nil {
				level.Warn(logger).Log("msg", "shutdown did not finish cleanly", "err", err)
			}
			return 0
		}
	}
}
