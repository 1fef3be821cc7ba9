package balancer_test

import (
	"errors"
	"fmt"

	"github.com/calclab/calclab/services/balancer"
)

func Example() {
	policy, err := balancer.New("round-robin")
	if err != nil {
		panic(err)
	}
	pool := []balancer.Backend{
		{ID: "slave-1", Healthy: true, Capacity: 4},
		{ID: "slave-2", Healthy: false}, // down: skipped
		{ID: "slave-3", Healthy: true, Capacity: 4},
	}
	for i := 0; i < 3; i++ {
		fmt.Println(pool[policy.Pick(pool, "")].ID)
	}

	// When Pick reports -1, fail the job with ErrNoBackend (-> 503).
	dispatch := func(pool []balancer.Backend) error {
		if policy.Pick(pool, "") < 0 {
			return fmt.Errorf("dispatch tile 7: %w", balancer.ErrNoBackend)
		}
		return nil
	}
	err = dispatch([]balancer.Backend{{ID: "slave-2"}})
	fmt.Println(errors.Is(err, balancer.ErrNoBackend), err)
	// Output:
	// slave-1
	// slave-3
	// slave-1
	// true dispatch tile 7: balancer: no available backend
}

func ExampleNew_unknown() {
	_, err := balancer.New("random")
	fmt.Println(err)
	// Output:
	// balancer: unknown policy "random" (valid: least-conn, round-robin, p2c, consistent-hash)
}
