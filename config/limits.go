package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/kms-exporter/kms_exporter/internal/regions"
)

// Bounds on the length of config values, by key, in bytes. Far above any
// real value; they keep a value pasted by mistake (or a hostile one) out of
// URLs, headers, labels and logs.
const (
	maxValueBytes  = 256      // names, regions, project IDs, tag keys, ...
	maxKeyBytes    = 1 << 10  // AK, SK, password
	maxTokenBytes  = 16 << 10 // temporary security tokens are long
	maxPathBytes   = 4 << 10
	maxRegexpBytes = 1 << 10
)

func maxBytes(key string) int {
	switch {
	case key == "security_token":
		return maxTokenBytes
	case key == "access_key" || key == "secret_key" || key == "password":
		return maxKeyBytes
	case strings.HasSuffix(key, "_file"):
		return maxPathBytes
	case strings.HasSuffix(key, "_endpoint"):
		return maxEndpointLen
	case key == "include" || key == "exclude":
		return maxRegexpBytes
	}
	return maxValueBytes
}

// checkValues bounds every string of v (a decoded config), map keys
// included, and refuses control characters and invalid UTF-8 in them.
// Errors name the field, never the value: it may be a secret.
func checkValues(path string, v reflect.Value) error {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			return checkValues(path, v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			key, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
			if key == "-" || key == "" || !v.Type().Field(i).IsExported() {
				continue
			}
			if err := checkValues(join(path, key), v.Field(i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			if err := checkString(path+" (a name)", maxValueBytes, k.String()); err != nil {
				return err
			}
			if err := checkValues(join(path, k.String()), v.MapIndex(k)); err != nil {
				return err
			}
		}
	case reflect.Slice:
		for i := range v.Len() {
			if err := checkValues(fmt.Sprintf("%s[%d]", path, i), v.Index(i)); err != nil {
				return err
			}
		}
	case reflect.String:
		key := path[strings.LastIndex(path, ".")+1:]
		if i := strings.IndexByte(key, '['); i >= 0 {
			key = key[:i] // tag_keys[3]: the limit of tag_keys
		}
		return checkString(path, maxBytes(key), v.String())
	}
	return nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func checkString(field string, limit int, s string) error {
	if len(s) > limit {
		return fmt.Errorf("%s: longer than %d bytes", field, limit)
	}
	if !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl) {
		return fmt.Errorf("%s: holds control characters or invalid UTF-8", field)
	}
	return nil
}

// regionShape is the shape of every region ID in the official SDK's
// tables: cn-north-4, eu-west-101, my-kualalumpur-1, ae-ad-1.
var regionShape = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)

// CheckRegion tells whether region has the shape of a region ID.
func CheckRegion(region string) error {
	switch {
	case region == "":
		return errors.New("missing")
	case len(region) > 64 || !regionShape.MatchString(region):
		if len(region) > 64 || !utf8.ValidString(region) || strings.ContainsFunc(region, unicode.IsControl) {
			return errors.New("not a region ID such as cn-north-4")
		}
		return fmt.Errorf("%q is not a region ID such as cn-north-4", region)
	}
	return nil
}

// Warnings are what a config holds that is allowed but probably wrong:
// regions the exporter does not know (their endpoints are guessed).
func (c *Config) Warnings() []string {
	var w []string
	unknown := func(field, region string) {
		if !regions.HasKMS(region) {
			w = append(w, fmt.Sprintf("%s: region %q is not one this exporter knows; its KMS endpoint is taken to be %s", field, region, regions.KMSEndpoint(region)))
		}
	}
	for i, t := range c.Targets {
		if t.KMSEndpoint == "" {
			unknown(fmt.Sprintf("targets[%d].region", i), t.Region)
		}
	}
	for i, d := range c.Discovery {
		if d.KMSEndpoint != "" {
			continue
		}
		for j, r := range d.Regions {
			unknown(fmt.Sprintf("discovery[%d].regions[%d]", i, j), r)
		}
	}
	return w
}
