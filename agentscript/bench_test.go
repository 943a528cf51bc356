package agentscript

import (
	"testing"

	"github.com/dop251/goja"
)

// benchScript is a realistic agent script of about 2 KB.
const benchScript = `// Summarise open orders per customer and flag the risky ones.
const { items: orders } = await callTool('orders:list', { status: 'open', limit: 200 });
const customers = await callTool('customers:list', { ids: orders.map((o) => o.customerId) });
const byId = {};
for (const c of customers.items) {
  byId[c.id] = { name: c.name, tier: c.tier ?? 'standard', country: c.address?.country };
}
const totals = {};
let flagged = 0;
for (let i = 0; i < orders.length; i++) {
  const o = orders[i];
  const key = String(o.customerId);
  if (!totals[key]) {
    totals[key] = { count: 0, amount: 0, currencies: [] };
  }
  const t = totals[key];
  t.count += 1;
  t.amount += Number(o.amount) || 0;
  if (!t.currencies.includes(o.currency)) t.currencies.push(o.currency);
  if (o.amount > 10000 || /^(test|dummy)-/i.test(o.reference ?? '')) {
    flagged++;
  }
}
const rows = Object.entries(totals)
  .map(([id, t]) => ({
    id,
    name: byId[id]?.name ?? 'unknown',
    tier: byId[id]?.tier,
    count: t.count,
    amount: Math.round(t.amount * 100) / 100,
    currencies: t.currencies.sort().join(','),
  }))
  .filter((r) => r.count > 0)
  .sort((a, b) => b.amount - a.amount);
const top = rows.slice(0, 10);
let note = '';
try {
  const fx = await callTool('fx:rates', { base: 'EUR' });
  note = ` + "`rates as of ${new Date(fx.asOf).toISOString()}`" + `;
} catch (e) {
  note = 'rates unavailable: ' + String(e.message);
}
const risky = await Promise.all(
  top.filter((r) => r.amount > 50000).map((r) => callTool('risk:score', { customerId: r.id })),
);
const byCurrency = {};
for (const o of orders) {
  const cur = o.currency || 'EUR';
  byCurrency[cur] = (byCurrency[cur] ?? 0) + (Number(o.amount) || 0);
}
const currencyLines = Object.keys(byCurrency).map((c) => c + ': ' + byCurrency[c].toFixed(2));
console.log('customers', rows.length, 'flagged', flagged, currencyLines.join('; '));
({
  top,
  flagged,
  risky: risky.map((r) => ({ id: r.customerId, score: r.score })),
  note,
  generatedAt: new Date().toISOString(),
});
`

func BenchmarkCheck(b *testing.B) {
	b.SetBytes(int64(len(benchScript)))
	for b.Loop() {
		if _, err := Check(benchScript, standard); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckAndCompile is the full cost before a script can run:
// validate and transform, then goja's compile of the transformed source.
func BenchmarkCheckAndCompile(b *testing.B) {
	b.SetBytes(int64(len(benchScript)))
	for b.Loop() {
		s, err := Check(benchScript, standard)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := goja.Compile("script.js", s.Source, false); err != nil {
			b.Fatal(err)
		}
	}
}

func TestBenchScriptPasses(t *testing.T) {
	if len(benchScript) < 1800 || len(benchScript) > 2600 {
		t.Errorf("bench script is %d bytes, want about 2 KB", len(benchScript))
	}
	if _, err := Check(benchScript, standard); err != nil {
		t.Fatal(err)
	}
}
