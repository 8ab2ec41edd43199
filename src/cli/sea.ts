// Entry of the single executable (npm run build:sea): the CLI, whose first import sets V8's young
// generation (cli/young-generation.ts) as it does for the npm package.
void import('./main.js');
