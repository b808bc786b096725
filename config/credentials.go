package config

import (
	"fmt"
	"net/http"
	"reflect"

	"github.com/go-kit/log"

	"github.com/kms-exporter/kms_exporter/internal/lockout"
	"github.com/kms-exporter/kms_exporter/kmsapi"
)

// BuildOptions apply to every credential built from a config.
type BuildOptions struct {
	IAMEndpoint       string // for credentials that set no iam_endpoint
	RequestsPerSecond float64
	Concurrency       int
	HTTPClient        *http.Client // every call's, metadata included; nil: kmsapi's defaults
	Observer          kmsapi.Observer
	PauseStore        *lockout.Store // keeps the pause after authentication failures across credentials and restarts
	Logger            log.Logger     // a warning per pause, each API call at debug level
}

// Credentials are the kmsapi credentials of one config, by name.
type Credentials struct {
	byName map[string]built
}

type built struct {
	settings    *Credential // as resolved: secrets read from their files
	iamEndpoint string
	cred        *kmsapi.Credential
}

// Get returns the credential named name, nil if none.
func (cs *Credentials) Get(name string) *kmsapi.Credential {
	return cs.byName[name].cred
}

// BuildCredentials makes one kmsapi.Credential per named credential of c.
// A credential whose name and settings are the same as in prev (the
// credentials of the config in force; nil at start) is kept, and with it
// its pause after an authentication failure, its cached tokens and its rate
// limit: else every reload would let one more request try a wrong secret,
// and five lock the AK. A changed secret is a new credential, tried at once.
func BuildCredentials(c *Config, prev *Credentials, o BuildOptions) (*Credentials, error) {
	cs := &Credentials{byName: map[string]built{}}
	for _, name := range c.CredentialNames() {
		cr := c.Credentials[name]
		iamEndpoint := cr.IAMEndpoint
		if iamEndpoint == "" {
			iamEndpoint = o.IAMEndpoint
		}
		if prev != nil {
			if p, ok := prev.byName[name]; ok && p.iamEndpoint == iamEndpoint && sameSettings(p.settings, cr) {
				cs.byName[name] = p
				continue
			}
		}
		auth, err := cr.authenticator(iamEndpoint, o.HTTPClient)
		if err != nil {
			return nil, fmt.Errorf("credentials.%s: %w", name, err)
		}
		cred, err := kmsapi.NewCredential(kmsapi.CredentialOptions{
			Name:              name,
			Auth:              auth,
			IAMEndpoint:       iamEndpoint,
			RequestsPerSecond: o.RequestsPerSecond,
			Concurrency:       o.Concurrency,
			HTTPClient:        o.HTTPClient,
			Observer:          o.Observer,
			PauseStore:        o.PauseStore,
			Logger:            o.Logger,
		})
		if err != nil {
			return nil, fmt.Errorf("credentials.%s: %w", name, err)
		}
		cs.byName[name] = built{settings: cr, iamEndpoint: iamEndpoint, cred: cred}
	}
	return cs, nil
}

// sameSettings compares two credentials field by field, through pointers
// (the iam block): a field added to Credential later is compared without
// anyone having to remember it.
func sameSettings(a, b *Credential) bool {
	return reflect.DeepEqual(a, b)
}

func (c *Credential) authenticator(iamEndpoint string, client *http.Client) (kmsapi.Authenticator, error) {
	switch c.Kind() {
	case KindAKSK:
		return kmsapi.NewAKSK(c.AccessKey, string(c.SecretKey), string(c.SecurityToken)), nil
	case KindIAM:
		return kmsapi.NewIAMPassword(kmsapi.IAMPasswordOptions{
			IAMEndpoint: iamEndpoint,
			DomainName:  c.IAM.DomainName,
			UserName:    c.IAM.UserName,
			Password:    string(c.IAM.Password),
		}), nil
	case KindECSMetadata:
		// nil: kmsapi's own client, which bypasses proxies.
		return kmsapi.NewECSMetadata(kmsapi.ECSMetadataOptions{Endpoint: c.MetadataEndpoint, HTTPClient: client}), nil
	case KindOIDC:
		return kmsapi.NewOIDC(kmsapi.OIDCOptions{IAMEndpoint: iamEndpoint, IdpID: c.OIDC.IdpID, IDToken: c.OIDC.idToken}), nil
	}
	return nil, fmt.Errorf("no secret")
}
