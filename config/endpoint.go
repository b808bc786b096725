package config

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

const maxEndpointLen = 1024

// NormalizeEndpoint checks that s is an http(s) base URL and returns it
// without a trailing slash. Without a scheme it gets https://, as in the
// official SDK (HUAWEICLOUD_SDK_IAM_ENDPOINT=iam.example.com).
func NormalizeEndpoint(s string) (string, error) {
	if len(s) > maxEndpointLen {
		return "", fmt.Errorf("longer than %d bytes", maxEndpointLen)
	}
	quoted := strconv.Quote(s)
	if strings.ContainsAny(s, "@?#") {
		// A user's password or a token in a query: not repeated.
		quoted = "the endpoint"
	}
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "", fmt.Errorf("%s is not a URL", quoted)
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("%s: the scheme must be http or https", quoted)
	case u.User != nil:
		return "", fmt.Errorf("%s must not hold a user name or password", quoted)
	case !validHost(u.Hostname()):
		return "", fmt.Errorf("%s has no valid host name", quoted)
	case u.Port() != "" && !validPort(u.Port()):
		return "", fmt.Errorf("%s has an invalid port", quoted)
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return "", fmt.Errorf("%s must not have a query or fragment", quoted)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// normalizeEndpoint normalizes *s in place when set; errors name field.
func normalizeEndpoint(field string, s *string) error {
	if *s == "" {
		return nil
	}
	v, err := NormalizeEndpoint(*s)
	if err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	*s = v
	return nil
}

// validHost accepts DNS names and IP addresses (IPv6 without brackets, as
// url.URL.Hostname returns it).
func validHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, c := range h {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '.', c == ':', c == '_':
		default:
			return false
		}
	}
	return true
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n > 0 && n <= 65535
}
