// Bug triage in one run: list the open bugs, file a summary issue that links
// them, close the duplicates against it, and show that a failed call is an
// ordinary exception.
const open = await callTool('tracker:list_issues', { state: 'open', label: 'bug' });
const bugs = open.issues;

const summary = await callTool('tracker:create_issue', {
  title: `Bug triage: ${bugs.length} open bugs`,
  body: bugs.map((b) => `#${b.id} ${b.title}`).join('\n'),
  labels: ['triage'],
});

const closed = [];
for (const b of bugs) {
  if (b.title.startsWith('Duplicate:')) {
    const done = await callTool('tracker:close_issue', { id: b.id, comment: `Tracked in #${summary.id}` });
    closed.push(done.id);
  }
}

try {
  await callTool('tracker:close_issue', { id: 999 });
} catch (e) {
  console.log(`expected failure: ${e.code}: ${e.message}`);
}

return { summary: summary.id, bugs: bugs.map((b) => b.id), closed };
