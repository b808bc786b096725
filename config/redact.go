package config

import (
	"fmt"

	promconfig "github.com/prometheus/common/config"
)

// promconfig.Secret hides itself only when marshalled: printed with fmt it
// shows the secret. Credential and IAMUser print theirs as "<secret>", so a
// credential written to a log or an error with %v or %+v shows none.

// Format prints the credential with every secret redacted.
func (c Credential) Format(f fmt.State, verb rune) {
	type credential Credential // without the Format method
	p := credential(c)
	p.SecretKey = redact(p.SecretKey)
	p.SecurityToken = redact(p.SecurityToken)
	fmt.Fprintf(f, fmt.FormatString(f, verb), p)
}

// Format prints the IAM user with its password redacted.
func (u IAMUser) Format(f fmt.State, verb rune) {
	type iamUser IAMUser
	p := iamUser(u)
	p.Password = redact(p.Password)
	fmt.Fprintf(f, fmt.FormatString(f, verb), p)
}

func redact(s promconfig.Secret) promconfig.Secret {
	if s == "" {
		return ""
	}
	return "<secret>"
}
