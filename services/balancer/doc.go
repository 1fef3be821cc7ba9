// Package balancer holds the load-balancing policies the master uses to choose
// a slave for each calculator task or Mandelbrot tile.
//
// The master keeps its pool under a mutex and, for each job, hands a slice of
// [Backend] snapshots to [Policy.Pick], which returns the index of the chosen
// backend or -1. A policy never picks a backend that is not [Backend.Available],
// never blocks, never allocates in the steady state, and is safe for concurrent
// use. When Pick returns -1 the caller should fail the job with [ErrNoBackend]
// (mapped to 503 in one place).
//
// Pass the whole pool on every call, unavailable slaves included and in a
// stable order (for example sorted by ID): round-robin rotates over positions,
// and consistent-hash must see an ejected slave to send its keys back to it
// when it recovers.
//
// The policies, by the name [New] accepts:
//
//   - "least-conn" ([LeastConn], the [Default]): the available backend with the
//     fewest tasks in flight; ties are broken at random so idle slaves share the
//     work evenly. nginx least_conn (without weights). Use it when tasks vary in
//     cost and you want no slave to pile up work while another idles.
//   - "round-robin" ([RoundRobin]): the available backends in turn. nginx's
//     default. Use it when tasks are uniform and slaves identical; it ignores
//     load and latency, so a slow slave still gets its full share.
//   - "p2c" ([P2C]): power of two random choices; of two random available
//     backends, the one with the lower latency × (in-flight + 1) wins. Traefik's
//     and Envoy's least-request/p2c. Use it when slaves differ in speed: it
//     steers work away from slow or busy slaves without the herd behaviour of
//     always picking the single best one.
//   - "consistent-hash" ([ConsistentHash]): a hash ring with virtual nodes over
//     Backend.ID; a key always lands on the same slave while it is available,
//     and only about 1/n of the keys move when a slave joins or leaves. nginx
//     hash $key consistent / ip_hash. Use it for affinity, e.g. to keep a
//     client's Mandelbrot tiles on the slave that has them cached.
package balancer
