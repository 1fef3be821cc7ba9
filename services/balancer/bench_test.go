package balancer

import (
	"fmt"
	"testing"
	"time"
)

// benchKeys are the hash keys benchmarks cycle through.
var benchKeys = func() []string {
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("tile-%d-%d", i%32, i/32)
	}
	return keys
}()

// benchPool returns n available backends with varied load and latency, and
// one in eight unhealthy when n > 2.
func benchPool(n int) []Backend {
	pool := make([]Backend, n)
	for i := range pool {
		pool[i] = Backend{
			ID:       fmt.Sprintf("slave-%02d", i),
			InFlight: i % 3,
			Capacity: 8,
			Latency:  time.Duration(1+i%5) * time.Millisecond,
			Healthy:  n <= 2 || i%8 != 7,
		}
	}
	return pool
}

func BenchmarkPick(b *testing.B) {
	for _, name := range Names() {
		b.Run(name, func(b *testing.B) {
			for _, n := range []int{2, 16} {
				b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
					p, err := New(name)
					if err != nil {
						b.Fatal(err)
					}
					pool := benchPool(n)
					p.Pick(pool, "warm-up")
					b.ReportAllocs()
					i := 0
					for b.Loop() {
						p.Pick(pool, benchKeys[i&1023])
						i++
					}
				})
			}
		})
	}
}

func BenchmarkPickParallel(b *testing.B) {
	for _, name := range Names() {
		b.Run(name, func(b *testing.B) {
			p, _ := New(name)
			pool := benchPool(16)
			p.Pick(pool, "warm-up")
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					p.Pick(pool, benchKeys[i&1023])
					i++
				}
			})
		})
	}
}

func BenchmarkRingBuild(b *testing.B) {
	pool := benchPool(16)
	b.ReportAllocs()
	for b.Loop() {
		newRing(pool, DefaultReplicas)
	}
}
