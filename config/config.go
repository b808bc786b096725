// Package config reads and checks the kms_exporter config file: named
// credentials and the targets (one region and project each) that use them.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	promconfig "github.com/prometheus/common/config"
	"go.yaml.in/yaml/v3"
)

// Config is the whole file.
type Config struct {
	Credentials map[string]*Credential `yaml:"credentials"`
	Targets     []Target               `yaml:"targets"`
	Discovery   []Discovery            `yaml:"discovery"`
}

// Credential is one named way to authenticate. Exactly one kind is set:
// AK/SK (access_key*, secret_key*, optional security_token*), IAM,
// ECSMetadata or OIDC.
type Credential struct {
	AccessKey         string            `yaml:"access_key,omitempty"`
	AccessKeyFile     string            `yaml:"access_key_file,omitempty"`
	SecretKey         promconfig.Secret `yaml:"secret_key,omitempty"`
	SecretKeyFile     string            `yaml:"secret_key_file,omitempty"`
	SecurityToken     promconfig.Secret `yaml:"security_token,omitempty"`
	SecurityTokenFile string            `yaml:"security_token_file,omitempty"`

	IAM *IAMUser `yaml:"iam,omitempty"`

	ECSMetadata      bool   `yaml:"ecs_metadata,omitempty"`
	MetadataEndpoint string `yaml:"metadata_endpoint,omitempty"`

	OIDC *OIDC `yaml:"oidc,omitempty"`

	IAMEndpoint string `yaml:"iam_endpoint,omitempty"`
}

// IAMUser logs in with a password for an IAM token.
type IAMUser struct {
	DomainName   string            `yaml:"domain_name"`
	UserName     string            `yaml:"user_name"`
	Password     promconfig.Secret `yaml:"password,omitempty"`
	PasswordFile string            `yaml:"password_file,omitempty"`
}

// Kind of a credential.
type Kind string

const (
	KindAKSK        Kind = "aksk"
	KindIAM         Kind = "iam"
	KindECSMetadata Kind = "ecs_metadata"
	KindOIDC        Kind = "oidc"
)

// Kind tells which kind of secret the credential holds; "" when none.
// Only meaningful on a validated config.
func (c *Credential) Kind() Kind {
	switch {
	case c.IAM != nil:
		return KindIAM
	case c.ECSMetadata:
		return KindECSMetadata
	case c.OIDC != nil:
		return KindOIDC
	case c.hasAKSK():
		return KindAKSK
	}
	return ""
}

// hasAKSK tells whether any key of the AK/SK kind is set.
func (c *Credential) hasAKSK() bool {
	return c.AccessKey != "" || c.AccessKeyFile != "" || c.SecretKey != "" || c.SecretKeyFile != "" ||
		c.SecurityToken != "" || c.SecurityTokenFile != ""
}

// Target is one project in one region.
type Target struct {
	Name        string   `yaml:"name"`
	Region      string   `yaml:"region"`
	ProjectID   string   `yaml:"project_id,omitempty"`
	Credentials string   `yaml:"credentials,omitempty"`
	KMSEndpoint string   `yaml:"kms_endpoint,omitempty"`
	TagKeys     []string `yaml:"tag_keys,omitempty"`
}

// Load reads, parses and checks the file at path. Secret files named with a
// relative path are read relative to the config file's directory.
func Load(path string) (*Config, error) {
	data, err := readFile(path, maxConfigFileBytes)
	if err != nil {
		return nil, fmt.Errorf("--config.file: %w", err)
	}
	c, err := Parse(data, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse decodes and checks a config; baseDir resolves relative secret file paths.
func Parse(data []byte, baseDir string) (*Config, error) {
	var root yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty config")
		}
		return nil, yamlError(err)
	}
	if err := checkSchema(&root); err != nil {
		return nil, err
	}
	var c Config
	if err := root.Decode(&c); err != nil {
		return nil, yamlError(err)
	}
	if err := c.Resolve(baseDir); err != nil {
		return nil, err
	}
	return &c, nil
}

// Resolve checks the config, reads every secret file into its field
// (trimming the trailing newline), and fills each target's Credentials when
// exactly one credential exists. Errors name the field at fault.
func (c *Config) Resolve(baseDir string) error {
	if err := checkValues("", reflect.ValueOf(c)); err != nil {
		return err
	}
	if len(c.Credentials) == 0 {
		return errors.New("credentials: at least one credential is required")
	}
	for _, name := range c.CredentialNames() {
		cr := c.Credentials[name]
		field := "credentials." + name
		if cr == nil {
			return errors.New(field + ": empty credential")
		}
		if err := cr.resolve(field, baseDir); err != nil {
			return err
		}
	}
	if len(c.Targets) == 0 && len(c.Discovery) == 0 {
		return errors.New("targets: at least one target is required (or a discovery entry)")
	}
	names := map[string]int{}
	projects := map[[2]string]int{}
	for i := range c.Targets {
		t := &c.Targets[i]
		field := fmt.Sprintf("targets[%d]", i)
		if t.Name == "" {
			return errors.New(field + ".name: missing")
		}
		if j, ok := names[t.Name]; ok {
			return fmt.Errorf("%s.name: duplicate name %q (also targets[%d])", field, t.Name, j)
		}
		names[t.Name] = i
		if err := CheckRegion(t.Region); err != nil {
			return fmt.Errorf("%s.region: %w", field, err)
		}
		if t.ProjectID != "" {
			// Two targets on one project would export the same series twice.
			k := [2]string{t.Region, t.ProjectID}
			if j, ok := projects[k]; ok {
				return fmt.Errorf("%s.project_id: same region and project as targets[%d]", field, j)
			}
			projects[k] = i
		}
		if err := c.pickCredential(field, &t.Credentials); err != nil {
			return err
		}
		if err := normalizeEndpoint(field+".kms_endpoint", &t.KMSEndpoint); err != nil {
			return err
		}
		if err := checkTagKeys(field, t.TagKeys); err != nil {
			return err
		}
	}
	return c.resolveDiscovery()
}

// pickCredential checks the credentials key of the target or discovery
// entry at field, and fills it in when exactly one credential exists.
func (c *Config) pickCredential(field string, name *string) error {
	switch {
	case *name == "" && len(c.Credentials) == 1:
		*name = c.CredentialNames()[0]
	case *name == "":
		return fmt.Errorf("%s.credentials: missing (required when more than one credential exists)", field)
	case c.Credentials[*name] == nil:
		return fmt.Errorf("%s.credentials: unknown credential %q", field, *name)
	}
	return nil
}

func checkTagKeys(field string, keys []string) error {
	for j, k := range keys {
		if k == "" {
			return fmt.Errorf("%s.tag_keys[%d]: empty tag key", field, j)
		}
	}
	return nil
}

// CredentialNames returns the credential names, sorted.
func (c *Config) CredentialNames() []string {
	names := make([]string, 0, len(c.Credentials))
	for n := range c.Credentials {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (cr *Credential) resolve(field, baseDir string) error {
	aksk := cr.hasAKSK()
	var kinds []string
	if aksk {
		kinds = append(kinds, "access_key/secret_key")
	}
	if cr.IAM != nil {
		kinds = append(kinds, "iam")
	}
	if cr.ECSMetadata {
		kinds = append(kinds, "ecs_metadata")
	}
	if cr.OIDC != nil {
		kinds = append(kinds, "oidc")
	}
	switch len(kinds) {
	case 0:
		return errors.New(field + ": no secret: set access_key and secret_key, iam, ecs_metadata or oidc")
	case 1:
	default:
		return fmt.Errorf("%s: more than one kind of secret: %s", field, strings.Join(kinds, " and "))
	}
	if cr.MetadataEndpoint != "" && !cr.ECSMetadata {
		return errors.New(field + ".metadata_endpoint: only allowed with ecs_metadata: true")
	}
	if err := normalizeEndpoint(field+".iam_endpoint", &cr.IAMEndpoint); err != nil {
		return err
	}
	if err := normalizeEndpoint(field+".metadata_endpoint", &cr.MetadataEndpoint); err != nil {
		return err
	}
	switch {
	case aksk:
		ak := promconfig.Secret(cr.AccessKey)
		if err := pick(field, "access_key", &ak, cr.AccessKeyFile, baseDir, true); err != nil {
			return err
		}
		cr.AccessKey = string(ak)
		if err := pick(field, "secret_key", &cr.SecretKey, cr.SecretKeyFile, baseDir, true); err != nil {
			return err
		}
		if err := pick(field, "security_token", &cr.SecurityToken, cr.SecurityTokenFile, baseDir, false); err != nil {
			return err
		}
	case cr.IAM != nil:
		if cr.IAM.DomainName == "" {
			return errors.New(field + ".iam.domain_name: missing")
		}
		if cr.IAM.UserName == "" {
			return errors.New(field + ".iam.user_name: missing")
		}
		if err := pick(field+".iam", "password", &cr.IAM.Password, cr.IAM.PasswordFile, baseDir, true); err != nil {
			return err
		}
	case cr.OIDC != nil:
		return cr.OIDC.resolve(field+".oidc", baseDir)
	}
	return nil
}

// pick fills *val from file when the file variant is set; exactly one of the
// two may be set, and one must be when required.
func pick(field, name string, val *promconfig.Secret, file, baseDir string, required bool) error {
	switch {
	case *val != "" && file != "":
		return fmt.Errorf("%s: both %s and %s_file set", field, name, name)
	case file != "":
		if !filepath.IsAbs(file) && baseDir != "" {
			file = filepath.Join(baseDir, file)
		}
		s, err := readSecretFile(field+"."+name+"_file", file, maxBytes(name))
		if err != nil {
			return err
		}
		*val = promconfig.Secret(s)
	case *val == "" && required:
		return fmt.Errorf("%s: missing %s (or %s_file)", field, name, name)
	}
	return nil
}
