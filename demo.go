package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	promconfig "github.com/prometheus/common/config"

	"github.com/kms-exporter/kms_exporter/config"
	"github.com/kms-exporter/kms_exporter/kmsapi/kmsfake"
)

// startDemo serves the demo account from the embedded fake on 127.0.0.1.
// The exporter talks to it through the real client: signed requests,
// paging and decoding as against the cloud.
func startDemo(logger log.Logger) (*kmsfake.Server, kmsfake.Scenario) {
	sc := kmsfake.Demo(time.Now())
	srv := kmsfake.Start(sc)
	level.Warn(logger).Log("msg", "demo mode: serving SIMULATED data from the embedded fake KMS API, not a real cloud account", "fake_api", srv.URL(), "projects", len(sc.Projects))
	level.Info(logger).Log("msg", "demo mode: a config file for the fake API, with its public demo credentials, is printed on stdout")
	fmt.Fprint(os.Stdout, demoTryIt(srv.URL(), sc))
	return srv, sc
}

// demoTryIt is a config file for the running fake, so that a user can try
// a config of their own (or a second kms_exporter) against it. The demo
// credentials are public and work against the fake only.
func demoTryIt(url string, sc kmsfake.Scenario) string {
	ak, user := demoAccessKey(sc), kmsfake.DemoUser
	if len(sc.Users) > 0 {
		user = sc.Users[0]
	}
	var b strings.Builder
	fmt.Fprintf(&b, `# kms_exporter --demo: a fake KMS and IAM API with simulated data
# listens on %[1]s while this process runs.
# It accepts the public demo credentials below, and nothing else: they work
# against this fake only. To try a config against it, save this as demo.yml
# and run, in another terminal:
#   kms_exporter --config.file=demo.yml --web.listen-address=:10568
credentials:
  demo:                      # AK/SK
    access_key: %[2]s
    secret_key: %[3]s
    iam_endpoint: %[1]s
  demo-user:                 # IAM user password, the other way to sign in
    iam:
      domain_name: %[4]s
      user_name: %[5]s
      password: %[6]s
    iam_endpoint: %[1]s
targets:
`, url, ak.AK, ak.SK, user.Domain, user.Name, user.Password)
	for _, p := range sc.Projects {
		if p.Name == "" {
			fmt.Fprintf(&b, "  - name: demo-%s\n    region: %s\n    project_id: %s\n    credentials: demo\n    kms_endpoint: %s\n", p.Region, p.Region, p.ID, url)
		}
	}
	// The sub-projects (cn-north-4_payments), found in IAM.
	fmt.Fprintf(&b, "discovery:\n  - credentials: demo\n    kms_endpoint: %s\n", url)
	return b.String()
}

// demoConfig has one static target per region project of the demo, named
// demo-<region>, and discovers the others (the sub-projects, named
// demo/<project>), all with the demo AK/SK and pointed at the fake.
func demoConfig(url string, sc kmsfake.Scenario) (*config.Config, error) {
	ak := demoAccessKey(sc)
	c := &config.Config{
		Credentials: map[string]*config.Credential{"demo": {
			AccessKey:     ak.AK,
			SecretKey:     promconfig.Secret(ak.SK),
			SecurityToken: promconfig.Secret(ak.SecurityToken),
			IAMEndpoint:   url,
		}},
		Discovery: []config.Discovery{{KMSEndpoint: url}},
	}
	for _, p := range sc.Projects {
		if p.Name != "" {
			continue
		}
		c.Targets = append(c.Targets, config.Target{
			Name:        "demo-" + p.Region,
			Region:      p.Region,
			ProjectID:   p.ID,
			KMSEndpoint: url,
		})
	}
	if err := c.Resolve(""); err != nil {
		return nil, err
	}
	return c, nil
}

// demoAccessKey is the AK/SK pair the demo's config uses.
func demoAccessKey(sc kmsfake.Scenario) kmsfake.AccessKey {
	if len(sc.AccessKeys) > 0 {
		return sc.AccessKeys[0]
	}
	return kmsfake.DemoAccessKey
}
