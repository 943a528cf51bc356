package broker

import (
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/enclave-go/enclave/limits"
)

// DefaultPoolSize is the connection pool of a client built by NewClient. Every
// followed event stream and every client tool wait holds one connection in a
// blocking read, so the pool is sized for sessions, not for cores.
const DefaultPoolSize = 1024

// NewClient connects to Redis as cfg says: one node, Sentinel when MasterName is
// set, or Cluster when several addresses are given. go-redis reconnects on its
// own, with backoff, when Redis restarts.
func NewClient(cfg limits.Redis) redis.UniversalClient {
	return redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:           cfg.Addrs,
		MasterName:      cfg.MasterName,
		Password:        cfg.Password,
		DB:              cfg.DB,
		PoolSize:        DefaultPoolSize,
		DialTimeout:     2 * time.Second,
		ReadTimeout:     3 * time.Second,
		WriteTimeout:    3 * time.Second,
		MinRetryBackoff: 8 * time.Millisecond,
		MaxRetryBackoff: 512 * time.Millisecond,
	})
}
