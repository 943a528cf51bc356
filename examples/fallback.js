// Ask the inventory service; when it fails, fall back to the warehouse tool and say so.
let stock;
let note = 'primary';
try {
  stock = await callTool('inventory', { sku: 'B2' });
} catch (e) {
  console.warn(`inventory failed: ${e.message}`);
  note = 'fallback';
  stock = await callTool('warehouse', { sku: 'B2' });
}
return { sku: stock.sku, inStock: stock.inStock, source: stock.source, note };
