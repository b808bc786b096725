package main

import (
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
	return srv, sc
}

// demoConfig has one static target per region project of the demo, named
// demo-<region>, and discovers the others (the sub-projects, named
// demo/<project>), all with the demo AK/SK and pointed at the fake.
func demoConfig(url string, sc kmsfake.Scenario) (*config.Config, error) {
	ak := kmsfake.DemoAccessKey
	if len(sc.AccessKeys) > 0 {
		ak = sc.AccessKeys[0]
	}
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
