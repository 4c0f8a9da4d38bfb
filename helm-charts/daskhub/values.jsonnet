// daskhub passes basehub's values to its basehub subchart: the same document, nested.
{
  basehub: import '../basehub/values.jsonnet',
}
