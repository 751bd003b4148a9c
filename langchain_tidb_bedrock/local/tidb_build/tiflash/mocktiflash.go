// Mock TiFlash stores for a stand-alone tidb-server (unistore), without failpoints.
//
// build.sh copies TiDB's own cmd/tidb-server/main.go from the Go module cache next to this file
// and applies main.go.patch, which changes two call sites: the "unistore" store driver becomes
// mockTiFlashDriver, and afterBootstrap(dom) runs once the domain exists. What this adds:
//
//  1. unistore plus N stores labelled engine=tiflash holding a peer of every region (the
//     topology of mockstore.WithMockTiFlash), re-registered through the mock PD with a
//     StatusAddress, which INFORMATION_SCHEMA.TIFLASH_* needs and unistore's AddStore cannot set.
//  2. infosync's MockTiFlash: placement rules and replica sync progress, so that
//     TIFLASH_REPLICA.AVAILABLE becomes 1 through TiDB's normal DDL poller (polled every 200 ms,
//     not 2 s).
//  3. The TiFlash system-table RPC (`system.dt_local_indexes`) answered with every vector index
//     fully built, so an ADD VECTOR INDEX job finishes. Build progress and build errors are
//     therefore not observable with this stand-in.
//  4. Region splits refused as no-ops: unistore runs an MPP task over its first region only, so a
//     split table would silently return part of its rows from "TiFlash".
//  5. MPP connections delayed 20 ms, which avoids unistore's 1 s retry sleep.
//
// unistore executes the "ANN" search as an exact TopN, so results equal the exact path; plans
// (annIndex, MPP) are TiDB's real ones.
//
// Environment: MOCK_TIFLASH_NODES (1), MOCK_TIFLASH_POLL_MS (200), MOCK_TIFLASH_MPP_CONN_DELAY_MS (20).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pingcap/errors"
	"github.com/pingcap/kvproto/pkg/kvrpcpb"
	"github.com/pingcap/kvproto/pkg/metapb"
	"github.com/pingcap/tidb/pkg/config"
	"github.com/pingcap/tidb/pkg/ddl"
	"github.com/pingcap/tidb/pkg/domain"
	"github.com/pingcap/tidb/pkg/domain/infosync"
	infoschemacontext "github.com/pingcap/tidb/pkg/infoschema/context"
	"github.com/pingcap/tidb/pkg/kv"
	"github.com/pingcap/tidb/pkg/store/mockstore"
	"github.com/pingcap/tidb/pkg/store/mockstore/unistore"
	"github.com/pingcap/tidb/pkg/util/logutil"
	"github.com/tikv/client-go/v2/testutils"
	"github.com/tikv/client-go/v2/tikv"
	"github.com/tikv/client-go/v2/tikvrpc"
	"github.com/tikv/client-go/v2/util"
	pd "github.com/tikv/pd/client"
	"go.uber.org/zap"
)

const tiflashVersion = "v8.5.4"

var (
	mockTF    *infosync.MockTiFlash
	globalDom atomic.Pointer[domain.Domain]
	// Written once by the cluster inspector, before the PD hijacker reads them.
	tiflashStores []*metapb.Store

	mppConnDelay = envMillis("MOCK_TIFLASH_MPP_CONN_DELAY_MS", 20)
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v >= 0 {
		return v
	}
	return def
}

func envMillis(name string, def int) time.Duration {
	return time.Duration(envInt(name, def)) * time.Millisecond
}

type storePutter interface {
	PutStore(context.Context, *metapb.Store) error
}

// findStorePutter unwraps CodecPDClient -> InterceptedPDClient -> unistore's MockPD.
func findStorePutter(c pd.Client) storePutter {
	for i := 0; i < 8 && c != nil; i++ {
		if p, ok := c.(storePutter); ok {
			return p
		}
		switch x := c.(type) {
		case *tikv.CodecPDClient:
			c = x.Client
		case util.InterceptedPDClient:
			c = x.Client
		case *util.InterceptedPDClient:
			c = x.Client
		default:
			return nil
		}
	}
	return nil
}

// mockTiFlashDriver replaces mockstore.EmbedUnistoreDriver for the "unistore" scheme.
type mockTiFlashDriver struct{}

func (mockTiFlashDriver) Open(path string) (kv.Storage, error) {
	u, err := url.Parse(path)
	if err != nil {
		return nil, errors.Trace(err)
	}
	if !strings.EqualFold(u.Scheme, "unistore") {
		return nil, errors.Errorf("Uri scheme expected(unistore) but found (%s)", u.Scheme)
	}
	// New tables stay in the bootstrap region (see the CmdSplitRegion case in SendRequest).
	atomic.StoreUint32(&ddl.EnableSplitTableRegion, 0)
	ddl.PollTiFlashInterval = envMillis("MOCK_TIFLASH_POLL_MS", 200)
	// An HTTP server on loopback serving /tiflash/sync-status and /config to the replica poller.
	mockTF = infosync.NewMockTiFlash()
	statusAddr := strings.TrimPrefix(mockTF.StatusAddr, "http://")
	nodes := envInt("MOCK_TIFLASH_NODES", 1)

	opts := []mockstore.MockTiKVStoreOption{
		mockstore.WithPath(u.Path),
		mockstore.WithStoreType(mockstore.EmbedUnistore),
		mockstore.WithClusterInspector(func(c testutils.Cluster) {
			addTiFlashStores(c.(*unistore.Cluster), nodes, statusAddr)
		}),
		// Must return the client it gets (the region cache needs the *CodecPDClient); it only
		// re-puts the TiFlash stores with their StatusAddress.
		mockstore.WithPDClientHijacker(func(c pd.Client) pd.Client {
			p := findStorePutter(c)
			if p == nil {
				panic("mocktiflash: cannot reach unistore's MockPD.PutStore")
			}
			for _, st := range tiflashStores {
				if err := p.PutStore(context.Background(), st); err != nil {
					panic(err)
				}
			}
			return c
		}),
		mockstore.WithClientHijacker(func(c tikv.Client) tikv.Client { return &tiflashClient{Client: c} }),
	}
	if ll := config.GetGlobalConfig().TxnLocalLatches; ll.Enabled {
		opts = append(opts, mockstore.WithTxnLocalLatches(ll.Capacity))
	}
	logutil.BgLogger().Info("mocktiflash: unistore with mock TiFlash stores",
		zap.Int("nodes", nodes), zap.String("statusAddr", statusAddr))
	return mockstore.NewMockStore(opts...)
}

func addTiFlashStores(mc *unistore.Cluster, nodes int, statusAddr string) {
	if ok, _ := mc.IsBootstrapped(); !ok {
		mockstore.BootstrapWithSingleStore(mc) // the TiKV store and region 1, persisted
	}
	// unistore keeps extra stores and peers in memory only: create them on every start, also
	// when a persistent data directory is reopened.
	label := &metapb.StoreLabel{Key: "engine", Value: "tiflash"}
	var ids []uint64
	for i := 0; i < nodes; i++ {
		id := mc.AllocID()
		addr := fmt.Sprintf("tiflash%d", i)
		mc.AddStore(id, addr, label) // also registers the store's MPP task set
		tiflashStores = append(tiflashStores, &metapb.Store{
			Id: id, Address: addr, PeerAddress: addr, StatusAddress: statusAddr,
			Labels: []*metapb.StoreLabel{label}, Version: tiflashVersion, GitHash: "mock",
		})
		ids = append(ids, id)
		mockTF.AddStore(id, addr)
	}
	// ScanRegions(nil, ...) skips the lone bootstrap region (its EndKey is empty): start at 0x00.
	regions := map[uint64]bool{}
	for _, r := range mc.ScanRegions([]byte{0}, nil, 0) {
		regions[r.Meta.Id] = true
	}
	for rid := range regions {
		for _, id := range ids {
			mc.AddPeer(rid, id, mc.AllocID())
		}
	}
	logutil.BgLogger().Info("mocktiflash: TiFlash peers added",
		zap.Int("regions", len(regions)), zap.Uint64s("stores", ids))
}

// afterBootstrap runs in main once the domain exists: the MockTiFlash needs it for placement rules.
func afterBootstrap(dom *domain.Domain) {
	globalDom.Store(dom)
	infosync.SetMockTiFlash(mockTF)
}

// tiflashClient answers the RPCs that unistore does not implement the way TiFlash would.
type tiflashClient struct{ tikv.Client }

func (c *tiflashClient) SendRequest(ctx context.Context, addr string, req *tikvrpc.Request, timeout time.Duration) (*tikvrpc.Response, error) {
	switch req.Type {
	case tikvrpc.CmdGetTiFlashSystemTable:
		data, err := systemTableResponse(req.Req.(*kvrpcpb.TiFlashSystemTableRequest).Sql)
		if err != nil {
			return nil, err
		}
		return &tikvrpc.Response{Resp: &kvrpcpb.TiFlashSystemTableResponse{Data: data}}, nil
	case tikvrpc.CmdSplitRegion:
		// unistore executes an MPP task over the key range of its FIRST region only, so a table
		// spread over several regions would return part of its rows: keep one region.
		return &tikvrpc.Response{Resp: &kvrpcpb.SplitRegionResponse{}}, nil
	case tikvrpc.CmdMPPConn:
		// unistore registers a dispatched task's tunnels a moment after DispatchMPPTask returns;
		// a connection that comes earlier sleeps a whole second. Come a little later instead.
		time.Sleep(mppConnDelay)
	}
	return c.Client.SendRequest(ctx, addr, req, timeout)
}

var (
	reLimit = regexp.MustCompile(`(?i)LIMIT\s+(\d+)\s*,\s*(\d+)\s*$`)
	reIn    = regexp.MustCompile(`(?i)(tidb_database|tidb_table)\s+IN\s*\(([^)]*)\)`)
)

type column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

func inList(s string) map[string]bool {
	m := map[string]bool{}
	for _, p := range strings.Split(s, ",") {
		m[strings.Trim(strings.TrimSpace(p), `'"`)] = true
	}
	return m
}

// systemTableResponse is TiFlash's JSON answer to TiDB's system-table SQL: every vector index of a
// table with a TiFlash replica is reported fully built; other system tables are empty.
func systemTableResponse(sql string) ([]byte, error) {
	resp := struct {
		Meta []column `json:"meta"`
		Data [][]any  `json:"data"`
	}{Data: [][]any{}}
	if !strings.Contains(sql, "dt_local_indexes") {
		return json.Marshal(resp)
	}
	for _, n := range []string{"tidb_database", "tidb_table", "table_id", "belonging_table_id",
		"column_id", "index_id", "index_kind", "rows_stable_indexed", "rows_stable_not_indexed",
		"rows_delta_indexed", "rows_delta_not_indexed", "error_message"} {
		resp.Meta = append(resp.Meta, column{Name: n, Type: "String"})
	}
	filters := map[string]map[string]bool{}
	for _, m := range reIn.FindAllStringSubmatch(sql, -1) {
		filters[strings.ToLower(m[1])] = inList(m[2])
	}
	var rows [][]any
	if dom := globalDom.Load(); dom != nil {
		for _, r := range dom.InfoSchema().ListTablesWithSpecialAttribute(infoschemacontext.TiFlashAttribute) {
			if f, ok := filters["tidb_database"]; ok && !f[r.DBName.O] {
				continue
			}
			for _, t := range r.TableInfos {
				if f, ok := filters["tidb_table"]; ok && !f[t.Name.O] {
					continue
				}
				for _, idx := range t.Indices {
					if idx.VectorInfo == nil || len(idx.Columns) == 0 {
						continue
					}
					colID := t.Columns[idx.Columns[0].Offset].ID
					rows = append(rows, []any{r.DBName.O, t.Name.O, t.ID, -1, colID, idx.ID,
						"HNSW", 0, 0, 0, 0, ""})
				}
			}
		}
	}
	if m := reLimit.FindStringSubmatch(sql); m != nil {
		off, _ := strconv.Atoi(m[1])
		n, _ := strconv.Atoi(m[2])
		off = min(off, len(rows))
		rows = rows[off:min(off+n, len(rows))]
	}
	resp.Data = append(resp.Data, rows...)
	return json.Marshal(resp)
}
