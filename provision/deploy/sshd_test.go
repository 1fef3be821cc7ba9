package deploy

import (
	"context"
	"testing"
	"time"
)

// ctx is a test context with a generous deadline.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}
