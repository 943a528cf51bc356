// Page through a paginated tool until it says there is no next page.
const items = [];
let page = 0;
let calls = 0;
while (page !== null) {
  const res = await callTool('catalog', { page });
  calls++;
  items.push(...res.items);
  page = res.nextPage;
}
const cheapest = items.reduce((a, b) => (b.price < a.price ? b : a));
return { count: items.length, calls, cheapest: cheapest.sku };
