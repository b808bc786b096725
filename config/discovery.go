package config

import (
	"fmt"
	"regexp"
	"time"

	"github.com/prometheus/common/model"
)

// DefaultRefreshInterval is how often a discovery entry lists its projects
// when refresh_interval is not set.
const DefaultRefreshInterval = time.Hour

// Discovery finds targets by listing the IAM projects of a credential: every
// project named after a KMS region, or a sub-project of one, is a target
// named CREDENTIAL/PROJECT_NAME.
type Discovery struct {
	Credentials     string   `yaml:"credentials,omitempty"`
	Regions         []string `yaml:"regions,omitempty"`
	Include         string   `yaml:"include,omitempty"`
	Exclude         string   `yaml:"exclude,omitempty"`
	RefreshInterval string   `yaml:"refresh_interval,omitempty"` // Prometheus duration: 30m, 1h, 1d
	KMSEndpoint     string   `yaml:"kms_endpoint,omitempty"`
	TagKeys         []string `yaml:"tag_keys,omitempty"`

	// Set by Resolve: Include and Exclude compiled (nil when unset), and
	// RefreshInterval parsed with the default filled in.
	IncludeRE *regexp.Regexp `yaml:"-"`
	ExcludeRE *regexp.Regexp `yaml:"-"`
	Interval  time.Duration  `yaml:"-"`
}

// resolveDiscovery checks the discovery entries and fills each one's
// Credentials when exactly one credential exists.
func (c *Config) resolveDiscovery() error {
	seen := map[string]int{}
	for i := range c.Discovery {
		d := &c.Discovery[i]
		field := fmt.Sprintf("discovery[%d]", i)
		if err := c.pickCredential(field, &d.Credentials); err != nil {
			return err
		}
		// Both entries would find the same targets under the same names.
		if j, ok := seen[d.Credentials]; ok {
			return fmt.Errorf("%s.credentials: credential %q already has a discovery entry (discovery[%d]); use one entry per credential", field, d.Credentials, j)
		}
		seen[d.Credentials] = i
		if err := d.check(field); err != nil {
			return err
		}
	}
	return nil
}

func (d *Discovery) check(field string) error {
	for j, r := range d.Regions {
		if err := CheckRegion(r); err != nil {
			return fmt.Errorf("%s.regions[%d]: %w", field, j, err)
		}
	}
	var err error
	if d.IncludeRE, err = compile(d.Include); err != nil {
		return fmt.Errorf("%s.include: %w", field, err)
	}
	if d.ExcludeRE, err = compile(d.Exclude); err != nil {
		return fmt.Errorf("%s.exclude: %w", field, err)
	}
	d.Interval = DefaultRefreshInterval
	if d.RefreshInterval != "" {
		v, err := model.ParseDuration(d.RefreshInterval)
		if err != nil || v <= 0 {
			return fmt.Errorf("%s.refresh_interval: %q is not a positive duration such as 30m or 1h", field, d.RefreshInterval)
		}
		d.Interval = time.Duration(v)
	}
	if err := normalizeEndpoint(field+".kms_endpoint", &d.KMSEndpoint); err != nil {
		return err
	}
	return checkTagKeys(field, d.TagKeys)
}

func compile(expr string) (*regexp.Regexp, error) {
	if expr == "" {
		return nil, nil
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, fmt.Errorf("invalid regexp: %w", err)
	}
	return re, nil
}
