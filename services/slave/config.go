package slave

import (
	"fmt"
	"net/url"

	"github.com/calclab/calclab/services/api"
	"github.com/calclab/calclab/services/httpserve"
)

// maxCapacity is the largest capacity the master accepts
// (dispatch.MaxCapacity).
const maxCapacity = 4096

// Check reports the first setting the slave cannot run with, named by its
// command-line flag (cmd/slave). A master URL or an id the master would
// refuse is an error here, at start, not a registration retried forever.
func (c Config) Check() error {
	if err := httpserve.CheckListen(c.Listen); err != nil {
		return fmt.Errorf("--listen %w", err)
	}
	if c.Master != "" {
		if err := checkBaseURL(c.Master); err != nil {
			return fmt.Errorf("--master %q %w, e.g. http://127.0.0.1:5000 (empty: run stand-alone)", c.Master, err)
		}
	}
	if c.Advertise != "" {
		if err := checkBaseURL(c.Advertise); err != nil {
			return fmt.Errorf("--advertise %q %w, e.g. http://192.168.56.11:6001", c.Advertise, err)
		}
		if u, _ := url.Parse(c.Advertise); u.Port() == "" {
			return fmt.Errorf("--advertise %q must name its port (the master asks for scheme://host:port), e.g. http://192.168.56.11:6001", c.Advertise)
		}
	}
	if c.ID != "" && !api.IDPattern.MatchString(c.ID) {
		return fmt.Errorf("--id %q must be 1-128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit", c.ID)
	}
	if err := api.CheckToken(c.Token); err != nil {
		return fmt.Errorf("--token %w", err)
	}
	if c.Capacity < 1 || c.Capacity > maxCapacity {
		return fmt.Errorf("--capacity must be from 1 to %d, got %d", maxCapacity, c.Capacity)
	}
	return nil
}

// checkBaseURL reports whether raw is an absolute http(s) URL of a server:
// scheme and host, no credentials, query or fragment.
func checkBaseURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Errorf("is not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("must be an absolute http:// or https:// URL")
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("has no host")
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return fmt.Errorf("must be scheme://host[:port] with no credentials, query or fragment")
	}
	if p := u.Port(); p != "" {
		if err := httpserve.CheckListen(":" + p); err != nil {
			return fmt.Errorf("has port %q, not a TCP port", p)
		}
	}
	return nil
}
