// Fan out several searches at once and pick the best-scoring hit of each.
const queries = ['water bottle steel', 'running shoes trail', 'warm down jacket'];
const results = await Promise.all(queries.map((query) => callTool('search', { query })));
const best = results.map((r) => {
  const top = r.hits.reduce((a, b) => (b.score > a.score ? b : a), { score: 0 });
  return { query: r.query, sku: top.sku, score: top.score };
});
best;
