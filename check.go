package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/kms-exporter/kms_exporter/config"
	"github.com/kms-exporter/kms_exporter/discovery"
	"github.com/kms-exporter/kms_exporter/kmsapi"
)

// checkDiscoveryTimeout bounds the IAM listings of --config.check.
const checkDiscoveryTimeout = 30 * time.Second

// checkConfig is --config.check: it loads the config as a start would
// (every secret file read), prints the targets it would watch, and returns
// the exit code: 0 when the config is good, 1 when it is not. Discovered
// targets are listed when IAM answers; when it cannot be reached that is
// said and is no failure, but IAM refusing the credential is.
func (a *app) checkConfig(out io.Writer) int {
	cfg, err := a.loadConfig()
	var creds *config.Credentials
	if err == nil {
		creds, err = config.BuildCredentials(cfg, nil, a.buildOptions())
	}
	if err != nil {
		fmt.Fprintf(out, "config: FAILED: %v\n", err)
		return 1
	}
	fmt.Fprintf(out, "config: OK (%s)\n", a.configSource())
	for _, warning := range a.configWarnings(cfg) {
		fmt.Fprintf(out, "warning: %s\n", warning)
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "static targets: %d\n", len(cfg.Targets))
	for _, t := range cfg.Targets {
		project := t.ProjectID
		if project == "" {
			project = "(looked up in IAM: the project named " + t.Region + ")"
		}
		fmt.Fprintf(w, "  %s\tregion=%s\tcredentials=%s\tproject_id=%s\n", t.Name, t.Region, t.Credentials, project)
	}
	w.Flush()
	if len(cfg.Discovery) == 0 {
		return 0
	}
	disc := a.newDiscoverer(cfg, creds)
	ctx, cancel := context.WithTimeout(context.Background(), checkDiscoveryTimeout)
	defer cancel()
	errs := disc.Refresh(ctx)
	found := disc.Targets()
	code := 0
	for _, d := range cfg.Discovery {
		err := errs[d.Credentials]
		switch {
		case refused(err):
			fmt.Fprintf(out, "discovery credentials=%s: FAILED: IAM refused to list the projects: %v\n", d.Credentials, err)
			code = 1
		case err != nil:
			fmt.Fprintf(out, "discovery credentials=%s: cannot reach IAM, discovered targets unknown: %v\n", d.Credentials, err)
		default:
			printDiscovered(out, d.Credentials, found)
		}
	}
	return code
}

func printDiscovered(out io.Writer, credential string, found []discovery.Target) {
	var mine []discovery.Target
	for _, t := range found {
		if t.Credential == credential {
			mine = append(mine, t)
		}
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "discovery credentials=%s: %d targets\n", credential, len(mine))
	for _, t := range mine {
		fmt.Fprintf(w, "  %s\tregion=%s\tproject_id=%s\n", t.Name, t.Region, t.ProjectID)
	}
	w.Flush()
}

// refused tells an IAM that answered no (401, 403: a wrong secret, or no
// permission to list projects) from one that did not answer.
func refused(err error) bool {
	var e *kmsapi.Error
	return errors.As(err, &e) && (e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden)
}

// configSource says where the config comes from.
func (a *app) configSource() string {
	switch {
	case a.demo != nil:
		return "--demo"
	case a.s.configFile != "":
		return a.s.configFile
	}
	return "flags and environment"
}
