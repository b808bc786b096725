package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// OIDC is workload identity: an OpenID Connect ID token, such as the
// service account token Kubernetes projects into a pod, that IAM exchanges
// for project-scoped tokens.
type OIDC struct {
	IdpID       string `yaml:"idp_id"`        // the identity provider's ID in IAM
	IDTokenFile string `yaml:"id_token_file"` // read at every exchange: Kubernetes rotates it

	field string // the config path of id_token_file, for errors at exchange time
}

// resolve checks the settings and that the token file can be read now, as
// every secret file is at start and reload.
func (o *OIDC) resolve(field, baseDir string) error {
	if o.IdpID == "" {
		return errors.New(field + ".idp_id: missing")
	}
	if o.IDTokenFile == "" {
		return errors.New(field + ".id_token_file: missing")
	}
	if !filepath.IsAbs(o.IDTokenFile) && baseDir != "" {
		o.IDTokenFile = filepath.Join(baseDir, o.IDTokenFile)
	}
	o.field = field + ".id_token_file"
	_, err := o.idToken()
	return err
}

// idToken reads the current ID token from its file.
func (o *OIDC) idToken() (string, error) {
	return readSecretFile(o.field, o.IDTokenFile, maxTokenBytes)
}

// readSecretFile reads the secret in file for field (the config path of
// the *_file key): the trailing newline trimmed, not empty, at most limit
// bytes, without control characters. Errors name the field and the file,
// never the content.
func readSecretFile(field, file string, limit int) (string, error) {
	b, err := readFile(file, maxSecretFileBytes)
	if err != nil {
		// The os error names the path and the cause, never the content.
		return "", fmt.Errorf("%s: %w", field, err)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s: %s is empty", field, file)
	}
	if err := checkString(file, limit, s); err != nil {
		return "", fmt.Errorf("%s: %w", field, err)
	}
	return s, nil
}
